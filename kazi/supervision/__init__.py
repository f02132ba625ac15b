"""Supervision (docs/supervision.md): indicators of health workers' task performance, reports and supervisor tasks.

* :mod:`kazi.supervision.definitions`: the program's ``supervision`` settings, parsed and validated (pure);
* :mod:`kazi.supervision.report`: periods, rates, team values, quartiles and rankings (pure);
* :mod:`kazi.supervision.tasks`: supervisor tasks emitted from indicator values (pure);
* :mod:`kazi.store.supervision` runs the counting queries, :mod:`kazi.server.supervision_api` serves them.
"""
