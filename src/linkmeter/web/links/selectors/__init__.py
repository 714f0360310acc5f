"""The reads, one module per reader (progress, details, tables, health, metrics, workers): import from those."""
