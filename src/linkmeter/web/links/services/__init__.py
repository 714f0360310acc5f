"""The only code that writes the database, one module per job (submission, queue, batches, feedback)."""
