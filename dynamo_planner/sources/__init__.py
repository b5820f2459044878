"""Metric sources (edges): Prometheus queries and router scrapes."""
