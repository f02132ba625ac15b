"""Reading population files for the benchmark (shared by bench/run.py and bench/kazi_run.py).

Accepted: a JSON array of docs; an object with ``docs`` (+ optional metadata such as ``users``); an object
with ``contacts`` / ``reports`` (/ ``task_docs``); JSON lines (one doc a line); a conformance case (its first
step's ``add``). bench/cht/driver.js reads the same formats.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

Doc = dict[str, Any]


def load_population(path: Path) -> tuple[list[Doc], dict[str, Any]]:
    text = path.read_text()
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, list):
        return data, {}
    if isinstance(data.get("docs"), list):
        return data["docs"], {k: v for k, v in data.items() if k != "docs"}
    if "steps" in data:
        step = data["steps"][0]
        return step["add"], {"user": data.get("user"), "timezone": data.get("timezone"), "now": step["now"]}
    docs = [
        *data.get("contacts", []),
        *data.get("reports", []),
        *data.get("task_docs", data.get("tasks", [])),
    ]
    return docs, {k: v for k, v in data.items() if k not in ("contacts", "reports", "task_docs", "tasks")}


def parse_now(value: str | int | float) -> int:
    """Epoch ms from epoch ms or ISO-8601 with an offset."""
    if isinstance(value, (int, float)) or re.fullmatch(r"\d+", str(value)):
        return int(value)
    s = str(value).replace("Z", "+00:00")
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        raise ValueError(f"--now needs an offset: {value}")
    return int(round(dt.timestamp() * 1000))
