"""Connectors (edges): apply replica plans to a deployment."""
