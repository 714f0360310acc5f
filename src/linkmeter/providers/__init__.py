"""Providers: one module per third-party API (plus the page fetch)."""
