"""Kazi's HTTP API: the app factory, the request plumbing and the routes; the services it calls are in kazi.service."""
