"""The engine: plans and runs providers for many URLs; imports no Django or Celery."""
