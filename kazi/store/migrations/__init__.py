"""Alembic migrations of the store, shipped inside the package so an installed Kazi can upgrade any database.

They are applied by :func:`kazi.store.open_store`; ``env.py`` only runs on the connection it is handed.
"""
