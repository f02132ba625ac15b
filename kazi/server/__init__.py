"""Kazi's server: the task service (live computation for every user), its background worker and the HTTP API."""
