"""Performance interpolators: what one engine does at a given load, from a profile."""
