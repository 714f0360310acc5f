"""Plans: what each account may use (priority, rate limits, URL quotas, batch size, providers) and its usage."""
