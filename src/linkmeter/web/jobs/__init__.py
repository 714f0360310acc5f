"""Running analyses: the in-process runner (embedded) and dispatch to it."""
