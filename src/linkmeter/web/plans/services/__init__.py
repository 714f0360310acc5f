"""The plans app's writes: quota reservations and plan assignment."""
