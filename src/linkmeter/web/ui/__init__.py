"""The web UI: pages for submitting links, following batches, reading links and provider health."""
