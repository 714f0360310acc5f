"""The REST API (Django Ninja) under /api/v1."""
