"""Compatibility shims for the supported Python versions."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 12):
    from importlib import metadata
else:  # pragma: no cover - depends on the interpreter
    import importlib_metadata as metadata

__all__ = ["metadata"]
