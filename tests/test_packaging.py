"""Packaging tests: version, entry points, and a cheap import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import dynamo_planner
from dynamo_planner._compat import metadata
from dynamo_planner.plugins import PluginGroup, default_registry

HEAVY = (
    "pmdarima",
    "prophet",
    "filterpy",
    "matplotlib",
    "httpx",
    "kubernetes",
    "etcd3gw",
)


class TestPackaging:
    def test_version_matches_metadata(self) -> None:
        """The package version is the installed distribution's version."""
        assert dynamo_planner.__version__ == metadata.version("dynamo_planner")

    def test_import_is_cheap(self) -> None:
        """Importing dynamo_planner loads none of the heavy optional libraries."""
        code = (
            "import json, sys, dynamo_planner, dynamo_planner.planner, "
            "dynamo_planner.config, dynamo_planner.cli; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout.strip().splitlines()[-1]) == []

    @pytest.mark.parametrize("group", list(PluginGroup))
    def test_every_built_in_entry_point_resolves(self, group: PluginGroup) -> None:
        """Each entry point our pyproject declares loads and satisfies its group."""
        registry = default_registry()
        names = [
            ep.name
            for ep in metadata.entry_points(group=group.value)
            if ep.value.startswith("dynamo_planner.")
        ]
        assert names, f"no built-in plugins in {group.value}"
        for name in names:
            assert registry.load(group, name) is not None
