"""Shared test configuration: Hypothesis profiles and paths to bundled data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, derandomize=True, database=None)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"


@pytest.fixture(name="repo_data")
def _repo_data() -> Path:
    """The repository's ``data/`` folder (traces and profiles for tests)."""
    return DATA


@pytest.fixture(name="h200_profile_dir")
def _h200_profile_dir() -> Path:
    """The bundled H200 Llama-3.1-8B profiling-results directory."""
    from dynamo_planner.data import H200_PROFILE_DIR

    return H200_PROFILE_DIR
