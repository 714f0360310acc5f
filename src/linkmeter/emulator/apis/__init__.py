"""The emulated provider APIs, one module per provider."""
