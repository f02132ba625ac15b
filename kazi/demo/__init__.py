"""Kazi's bundled demo program and the data it is meant to be demonstrated with.

The program itself is a cht-conf project folder (``program/``), shipped as package data so that
``kazi`` can run a realistic configuration out of the box; :mod:`kazi.population` generates a matching
synthetic population.
"""

from __future__ import annotations

from pathlib import Path

#: The demo program folder (tasks.js, nools-extras.js, targets.js, app_settings.json, ...).
PROGRAM_DIR: Path = Path(__file__).resolve().parent / "program"
