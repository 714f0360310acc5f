"""Links, their analyses, provider results, batches and feedback: models, services and selectors."""
