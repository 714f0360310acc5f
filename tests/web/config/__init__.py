"""Tests of linkmeter.web.config: the Django settings and the Celery settings."""
