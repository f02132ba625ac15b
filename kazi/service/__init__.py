"""Kazi's application services: what the HTTP API, the CLI and the worker process all call.

Program versions, rounds and dirty tracking and per-user computation (:mod:`kazi.service.tasks`), SMS processing
(:mod:`kazi.service.sms`), supervisor tasks (:mod:`kazi.service.supervisor_tasks`), the background worker loop
(:mod:`kazi.service.worker`), emission over worker processes (:mod:`kazi.service.emission_pool`), accounts' sign-in
rules (:mod:`kazi.service.auth`) and the cache of rendered task pages (:mod:`kazi.service.pages`). They sit above the
store and the pure core and below the interfaces (:mod:`kazi.server`, :mod:`kazi.cli`); nothing here knows HTTP.
"""
