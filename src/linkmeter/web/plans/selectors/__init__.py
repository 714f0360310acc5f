"""The plans app's reads: an account's plan and its usage."""
