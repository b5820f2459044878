# /// script
# dependencies = ["nox>=2025.2.9"]
# ///
"""Developer tasks: ``python3 -m nox -s <session>``.

Sessions: ``replay`` (the main job), ``tests``, ``lint``, ``typecheck``, ``docs``, ``bench``.
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.reuse_venv = "yes"

PROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"
EXAMPLE_PLUGIN = "./examples/custom_connector"


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PROJECT, name))


@nox.session(python=PYTHON)
def replay(session: nox.Session) -> None:
    """Replay the bundled trace on the bundled profile; print attainment and GPU-hours."""
    session.install(".[plot]")
    session.run("dynamo-planner", "replay", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite against the installed package (entry points included)."""
    session.install(".[all]", EXAMPLE_PLUGIN, *_group("tests"))
    session.run(
        "pytest",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "ci"},
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install(*_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and the typing examples."""
    session.install(".[all]", *_group("typecheck"))
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors."""
    session.install(".[all]", *_group("docs"))
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (speed and accuracy, printed as ratios)."""
    session.install(".[all]", *_group("bench"))
    scripts = session.posargs or sorted(
        str(p) for p in __import__("pathlib").Path("benchmarks").glob("bench_*.py")
    )
    for script in scripts:
        session.run("python", script)
