"""Task interaction tracking (docs/interactions.md): what a tracked user did in the Tasks tab, for analysts.

The web app records a few kinds of events while a user is in the Tasks tab (opened the list, opened a task at
position 3, saved its form...) and sends one summary per user, device and local day. This package is the pure
part of the server's half, with no I/O, so it can be tested on hand-made summaries:

* :mod:`kazi.analytics.summary`: the summary format and its validation (nothing that could carry personal
  data gets through);
* :mod:`kazi.analytics.metrics`: the analysts' numbers, by day, user, device and task type;
* :mod:`kazi.analytics.export`: the same tables as CSV and Parquet;
* :mod:`kazi.analytics.vocabulary`: which title keys and form ids a program has (what summaries may name).

Storage is :mod:`kazi.store.interactions`, the HTTP routes :mod:`kazi.server.interactions_api`, the guide
``docs/interactions.md``.
"""
