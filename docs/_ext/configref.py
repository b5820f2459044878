"""Sphinx extension: the ``planner-config`` directive renders PlannerConfig's fields.

One table per section, one row per field: the field name (and other accepted keys), the
command-line flag, the environment variables, the type, the default and the help text,
all read from the attrs metadata of :class:`dynamo_planner.config.PlannerConfig`, so the
reference cannot drift from the code.

Usage (MyST)::

    ```{planner-config}
    ```

Option ``:section:`` limits the output to one section (e.g. ``Load predictor``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

HEADERS = ("Field", "Flag", "Environment", "Type", "Default", "Description")
WIDTHS = (18, 18, 18, 10, 12, 30)


def _cell(*children: nodes.Node) -> nodes.entry:
    entry = nodes.entry()
    paragraph = nodes.paragraph()
    for index, child in enumerate(children):
        if index:
            paragraph += nodes.Text(" ")
        paragraph += child
    entry += paragraph
    return entry


def _literals(values: tuple[str, ...]) -> list[nodes.Node]:
    return [nodes.literal(text=v) for v in values]


def _row(option: Any) -> nodes.row:
    row = nodes.row()
    name = _cell(nodes.literal(text=option.name))
    name["ids"] = [nodes.make_id(f"config-{option.name}")]
    if option.aliases:
        name += nodes.paragraph(
            "", "", nodes.Text("also: "), *_join(_literals(option.aliases))
        )
    row += name
    flags = tuple(f for f in (option.flag, option.negative_flag) if f)
    row += _cell(*_literals(flags)) if flags else _cell(nodes.Text("-"))
    row += _cell(*_literals(option.env))
    row += _cell(nodes.Text(option.type_name))
    row += _cell(nodes.literal(text=repr(option.default)))
    row += _cell(nodes.Text(option.help))
    return row


def _join(children: list[nodes.Node]) -> list[nodes.Node]:
    joined: list[nodes.Node] = []
    for index, child in enumerate(children):
        if index:
            joined.append(nodes.Text(", "))
        joined.append(child)
    return joined


def _table(options: list[Any]) -> nodes.table:
    table = nodes.table(classes=["planner-config"])
    group = nodes.tgroup(cols=len(HEADERS))
    table += group
    for width in WIDTHS:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    header = nodes.row()
    for title in HEADERS:
        header += _cell(nodes.Text(title))
    head += header
    group += head
    body = nodes.tbody()
    for option in options:
        body += _row(option)
    group += body
    return table


class PlannerConfigDirective(SphinxDirective):
    """Render the PlannerConfig reference tables."""

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {"section": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        """Build one rubric and table per section."""
        from dynamo_planner import config

        self.env.note_dependency(config.__file__)
        wanted = self.options.get("section")
        sections: dict[str, list[Any]] = {}
        for option in config.config_options():
            sections.setdefault(option.section, []).append(option)
        if wanted is not None and wanted not in sections:
            known = ", ".join(sections)
            raise self.error(f"unknown section {wanted!r} (sections: {known})")
        result: list[nodes.Node] = []
        for section, options in sections.items():
            if wanted is not None and section != wanted:
                continue
            if wanted is None:
                result.append(nodes.rubric(text=section))
            result.append(_table(options))
        return result


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("planner-config", PlannerConfigDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
