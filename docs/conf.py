"""Sphinx configuration for the dynamo_planner docs."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "dynamo_planner"
author = "dynamo_planner developers"
copyright = "2026, dynamo_planner developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "configref",  # docs/_ext/configref.py: the PlannerConfig reference tables
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
html_theme = "furo"
html_title = "dynamo_planner"
html_static_path = ["_static"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# No intersphinx: the docs build offline, and cross-project inventories cannot be fetched.
nitpicky = False
