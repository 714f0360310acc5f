"""Accounts: local mode or login, the local owner, users' profiles, API keys and how requests are authenticated."""
