"""Kazi's demo: the bundled demo program and what demonstrates it.

The program itself is a cht-conf project folder (``program/``), shipped as package data so that
``kazi`` can run a realistic configuration out of the box. Beside it: the synthetic population that matches it
(:mod:`kazi.demo.population`), the loading of both into a store with the demo accounts (:mod:`kazi.demo.load`),
the replay of the CHWs' last months (:mod:`kazi.demo.history`) and the demo served on a free port for the
browser tests and the screenshots (:mod:`kazi.demo.server`). ``kazi demo`` (:mod:`kazi.cli.demo`) is the
command; the modules here may use every layer below the command line (the services, the HTTP app).
"""

from __future__ import annotations

from pathlib import Path

#: The demo program folder (tasks.js, nools-extras.js, targets.js, app_settings.json, ...).
PROGRAM_DIR: Path = Path(__file__).resolve().parent / "program"
