"""Request-level simulator of prefill and decode workers, driven by a trace."""
