"""Cases by SMS (docs/sms.md): SMS forms, parsing, replies and the gateway wire formats, all pure.

Storage is :mod:`kazi.store.sms`; the HTTP routes and the processing of a batch are in
:mod:`kazi.server.sms_api` and :mod:`kazi.service.sms`. The guide is docs/sms.md.
"""
