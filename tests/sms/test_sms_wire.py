"""Gateways' wire formats (kazi.sms.gateway): medic-gateway's body and answer, the plain JSON body."""

from __future__ import annotations

from kazi.sms import gateway as gw


def test_medic_gateway_body() -> None:
    messages, updates, problems = gw.read_medic_gateway({
        "messages": [{"id": "a", "from": " +265888123456 ", "content": "P 12 Mary",
                      "sms_sent": 1754036400000, "sms_received": 1754036405000}],
        "updates": [{"id": "r1", "status": "UNSENT"}, {"id": "r2", "status": "PENDING"},
                    {"id": "r3", "status": "SENT"}, {"id": "r4", "status": "DELIVERED"},
                    {"id": "r5", "status": "FAILED", "reason": "no credit"}]})
    assert problems == []
    assert messages == [gw.Incoming("a", "+265888123456", "P 12 Mary", 1754036405000, 1754036400000)]
    assert updates == [gw.StateUpdate("r1", "received-by-gateway"), gw.StateUpdate("r2", "forwarded-by-gateway"),
                       gw.StateUpdate("r3", "sent"), gw.StateUpdate("r4", "delivered"),
                       gw.StateUpdate("r5", "failed", "no credit")]
    assert gw.read_medic_gateway({}) == ([], [], [])  # a poll with nothing to say
    assert gw.medic_gateway_answer([("r9", "+265888123456", "Thanks")]) == {
        "messages": [{"id": "r9", "to": "+265888123456", "content": "Thanks"}]}


def test_times_outside_the_calendar() -> None:
    """A received time outside 2000-01-01..2099-12-31 refuses the message; a sent time (the sending phone's
    clock, kept for reference only) outside it is dropped."""
    for bad in (2**62, -1, 0, 2000, 4102444800000):
        _, problems = gw.read_plain({"messages": [{"id": "x", "from": "+1", "text": "t", "received_at": bad}]})
        assert [p.field for p in problems] == ["messages[0].received_at"]
        assert "between 2000-01-01 and 2099-12-31" in problems[0].message
    messages, _, problems = gw.read_medic_gateway({"messages": [{"id": "a", "from": "1", "content": "c",
                                                                 "sms_sent": 2**62, "sms_received": 946684800000}]})
    assert problems == [] and messages == [gw.Incoming("a", "1", "c", 946684800000, None)]


def test_problems_are_located() -> None:
    _, _, problems = gw.read_medic_gateway({"messages": [{"id": "a", "from": "1", "content": 3,
                                                          "sms_received": "today"}],
                                            "updates": [{"id": "r", "status": "GONE"}, 4]})
    assert [p.field for p in problems] == ["messages[0].content", "messages[0].sms_received", "updates[0].status",
                                           "updates[1]"]
    assert gw.read_medic_gateway([])[2][0].field == "body"
    messages, problems = gw.read_plain({"messages": [{"id": "x", "from": "+1", "text": ""}]})
    assert problems == [] and messages == [gw.Incoming("x", "+1", "", None)]
    assert gw.read_plain({"msgs": []})[1][0].field == "body"
    too_many = {"messages": [{"id": str(i), "from": "1", "text": "x"} for i in range(gw.MAX_MESSAGES + 1)]}
    assert gw.read_plain(too_many)[1][0].field == "messages"


def test_a_status_of_any_json_type_is_a_located_problem() -> None:
    """An object or array is unhashable: looked up among the states as it is, it raised a TypeError (a 500)."""
    _, updates, problems = gw.read_medic_gateway({"updates": [{"id": None, "status": {}}, {"id": "r", "status": []},
                                                              {"id": "s", "status": 3}]})
    assert updates == []
    assert [p.field for p in problems] == ["updates[0].id", "updates[0].status", "updates[1].status",
                                           "updates[2].status"]


def test_a_refused_character_refuses_its_message_only() -> None:
    messages, updates, problems = gw.read_medic_gateway({
        "messages": [{"id": "a", "from": "1", "content": "ok"}, {"id": "b", "from": "1", "content": "x\x00"},
                     {"id": "c\udc00", "from": "1", "content": "ok"}],
        "updates": [{"id": "r1", "status": "SENT", "reason": "\x00"}, {"id": "r2", "status": "SENT"}]})
    assert [m.id for m in messages] == ["a"] and [u.id for u in updates] == ["r2"]
    assert gw.refused_all(problems) == []
    assert [(p.item, p.item_id, p.field) for p in gw.refused_one(problems)] == [
        (1, "b", "messages[1].content"), (2, "c\ufffd", "messages[2].id"), (0, "r1", "updates[0].reason")]
    # a message that is also malformed refuses the request, as any malformed message does
    _, problems = gw.read_plain({"messages": [{"id": "x\x00", "text": "t"}]})
    assert [p.field for p in gw.refused_all(problems)] == ["messages[0].from"]
