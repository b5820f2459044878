"""Finding and loading plugins through entry points.

Every predictor, interpolator, scaler, metric source and connector, built-in or not, is
found by name in one of five entry-point groups:

================================== ================================================ ====================
Group                              Protocol (:mod:`dynamo_planner.protocols`)       Named constructor
================================== ================================================ ====================
``dynamo_planner.predictors``      :class:`~dynamo_planner.protocols.Predictor`      ``from_config``
``dynamo_planner.interpolators``   :class:`~dynamo_planner.protocols.Interpolator`   ``from_profile``
``dynamo_planner.scalers``         :class:`~dynamo_planner.protocols.Scaler`         ``from_config``
``dynamo_planner.metric_sources``  :class:`~dynamo_planner.protocols.MetricSource`   ``from_config``
``dynamo_planner.connectors``      :class:`~dynamo_planner.protocols.Connector`      ``from_config``
================================== ================================================ ====================

An entry point names a **class**. Predictors, scalers, metric sources and connectors have
a classmethod ``from_config(config: PlannerConfig, **kwargs)``; interpolators have
``from_profile(profile: PerfProfile)``. The registry only finds and loads classes; the
caller (the :class:`~dynamo_planner.planner.Planner` facade, a test, a notebook) constructs
them with the named constructor.

The :class:`Registry` is:

* **lazy**: nothing is read at import time; :meth:`Registry.available` reads installed
  metadata only and never imports a plugin; :meth:`Registry.load` imports exactly one;
* **cached**: entry points are read once per group, and each class is loaded once;
* **injectable**: ``Registry({"dynamo_planner.connectors": {"mine": MyConnector}})``
  serves plugins from a mapping (objects or ``"module:attr"`` strings) instead of, or
  on top of, the installed entry points; :meth:`Registry.with_plugin` returns a copy
  with one more;
* **loud**: an unknown name raises :class:`~dynamo_planner.exceptions.PluginNotFoundError`
  listing what is available; an import failure raises
  :class:`~dynamo_planner.exceptions.PluginLoadError` chained to the ``ImportError`` (with
  the extra to install when the missing module is one of ours); a class without the
  group's methods, or with a synchronous method where the Protocol is async, raises
  :class:`~dynamo_planner.exceptions.PluginContractError`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import enum
import functools
import importlib
import inspect
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from dynamo_planner import protocols
from dynamo_planner._compat import metadata
from dynamo_planner.exceptions import (
    PluginContractError,
    PluginError,
    PluginLoadError,
    PluginNotFoundError,
)

__all__ = [
    "PluginGroup",
    "Registry",
    "default_registry",
]


class PluginGroup(enum.StrEnum):
    """The entry-point groups, one per role.

    .. versionadded:: 0.1.0
    """

    PREDICTORS = "dynamo_planner.predictors"
    INTERPOLATORS = "dynamo_planner.interpolators"
    SCALERS = "dynamo_planner.scalers"
    METRIC_SOURCES = "dynamo_planner.metric_sources"
    CONNECTORS = "dynamo_planner.connectors"

    @property
    def protocol(self) -> type:
        """The Protocol the group's plugins implement."""
        return _PROTOCOLS[self]

    @property
    def constructor(self) -> str:
        """The named constructor the group's classes provide."""
        return "from_profile" if self is PluginGroup.INTERPOLATORS else "from_config"

    @classmethod
    def of(cls, group: PluginGroup | str) -> PluginGroup:
        """The group for a full name (``"dynamo_planner.scalers"``) or short name.

        Raises:
            PluginError: If no group has that name.
        """
        if isinstance(group, PluginGroup):
            return group
        for member in cls:
            if group in (member.value, member.value.rpartition(".")[2]):
                return member
        names = ", ".join(m.value for m in cls)
        raise PluginError(f"unknown plugin group {group!r} (groups: {names})")


_PROTOCOLS: dict[PluginGroup, type] = {
    PluginGroup.PREDICTORS: protocols.Predictor,
    PluginGroup.INTERPOLATORS: protocols.Interpolator,
    PluginGroup.SCALERS: protocols.Scaler,
    PluginGroup.METRIC_SOURCES: protocols.MetricSource,
    PluginGroup.CONNECTORS: protocols.Connector,
}

# Modules that only optional extras install: a failed import of one of these names the
# extra to install.
_EXTRAS = {
    "httpx": "live",
    "prometheus_client": "live",
    "etcd3gw": "live",
    "kubernetes": "live",
    "matplotlib": "plot",
}

_TARGET = re.compile(r"[A-Za-z_][\w.]*\s*(:\s*[A-Za-z_][\w.]*)?")


def _protocol_methods(protocol: type) -> dict[str, bool]:
    """Public methods a Protocol declares, mapped to whether they are async."""
    return {
        name: inspect.iscoroutinefunction(value)
        for name, value in vars(protocol).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }


class Registry:
    """Finds plugins by group and name; lazy, cached and injectable.

    Args:
        plugins: Plugins to serve, by group (full or short name) then name. A value is the
            plugin itself (normally a class) or a ``"module:attr"`` string imported on
            first :meth:`load`.
        installed: Also serve the installed entry points. Defaults to ``True`` when no
            ``plugins`` are given and ``False`` otherwise, so a registry built for a test
            sees exactly what the test gave it. Given plugins shadow installed ones of the
            same name.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        plugins: Mapping[PluginGroup | str, Mapping[str, object]] | None = None,
        *,
        installed: bool | None = None,
    ) -> None:
        self._given: dict[PluginGroup, dict[str, object]] = {}
        for group, entries in (plugins or {}).items():
            self._given.setdefault(PluginGroup.of(group), {}).update(entries)
        self._installed = plugins is None if installed is None else installed
        self._entry_points: dict[PluginGroup, dict[str, object]] = {}
        self._loaded: dict[tuple[PluginGroup, str], object] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        given = {g.value: sorted(e) for g, e in self._given.items()}
        return f"Registry(plugins={given!r}, installed={self._installed})"

    def with_plugin(
        self, group: PluginGroup | str, name: str, plugin: object
    ) -> Registry:
        """A new registry serving ``plugin`` under ``name`` besides what this one serves."""
        plugins: dict[PluginGroup | str, dict[str, object]] = {
            g: dict(e) for g, e in self._given.items()
        }
        plugins.setdefault(PluginGroup.of(group), {})[name] = plugin
        return Registry(plugins, installed=self._installed)

    def available(self, group: PluginGroup | str) -> tuple[str, ...]:
        """The names that can be loaded from ``group``, sorted; imports no plugin."""
        return tuple(sorted(self._entries(PluginGroup.of(group))))

    def load(self, group: PluginGroup | str, name: str) -> Any:
        """Import (once) and return the plugin ``name`` of ``group``, checked.

        Raises:
            PluginNotFoundError: If no plugin has that name; lists the available names.
            PluginLoadError: If importing it failed (chained to the original error).
            PluginContractError: If it lacks the group's methods or named constructor.
        """
        member = PluginGroup.of(group)
        key = (member, name)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            entries = self._entries(member)
            if name not in entries:
                raise PluginNotFoundError(
                    group=member.value, name=name, available=sorted(entries)
                )
            plugin = self._import(member, name, entries[name])
            self.check(member, name, plugin)
            self._loaded[key] = plugin
            return plugin

    def check(self, group: PluginGroup | str, name: str, plugin: object) -> None:
        """Check that ``plugin`` is a class with what its group's Protocol asks for.

        That is every method of the Protocol (async where the Protocol's is async) and the
        group's named constructor (``from_config`` or ``from_profile``).

        Raises:
            PluginContractError: Naming what is missing.
        """
        member = PluginGroup.of(group)
        protocol = member.protocol
        if not inspect.isclass(plugin):
            raise PluginContractError(
                group=member.value,
                name=name,
                protocol=f"{protocol.__name__} (got {type(plugin).__name__} "
                f"{plugin!r}, expected a class)",
            )
        problems = []
        for method, is_async in _protocol_methods(protocol).items():
            value = inspect.getattr_static(plugin, method, None)
            if value is None or not callable(getattr(plugin, method, None)):
                problems.append(f"no method {method}")
            elif is_async and not inspect.iscoroutinefunction(getattr(plugin, method)):
                problems.append(f"{method} is not async")
        constructor = member.constructor
        if not callable(getattr(plugin, constructor, None)):
            problems.append(f"no classmethod {constructor}")
        if problems:
            raise PluginContractError(
                group=member.value,
                name=name,
                protocol=f"{protocol.__name__} ({'; '.join(problems)})",
            )

    # ---- internals --------------------------------------------------------------------

    def _entries(self, group: PluginGroup) -> dict[str, object]:
        """Name -> plugin, ``"module:attr"`` string or entry point, for one group."""
        entries: dict[str, object] = {}
        if self._installed:
            if group not in self._entry_points:
                self._entry_points[group] = _read_entry_points(group)
            entries.update(self._entry_points[group])
        entries.update(self._given.get(group, {}))
        return entries

    @staticmethod
    def _import(group: PluginGroup, name: str, entry: object) -> object:
        if isinstance(entry, _Conflict):
            raise entry.error()
        if isinstance(entry, metadata.EntryPoint):
            target = entry.value
            loader = entry.load
        elif isinstance(entry, str):
            target = entry
            if not _TARGET.fullmatch(target):
                raise PluginLoadError(
                    group=group.value,
                    name=name,
                    target=target,
                    reason="not a 'module:attr' reference",
                )

            def loader() -> object:
                module_name, _, attr = target.partition(":")
                obj: object = importlib.import_module(module_name.strip())
                for part in filter(None, attr.strip().split(".")):
                    obj = getattr(obj, part)
                return obj
        else:
            return entry
        try:
            return loader()
        except (ImportError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            missing = getattr(exc, "name", None)
            top = missing.partition(".")[0] if isinstance(missing, str) else None
            if isinstance(exc, ImportError) and top in _EXTRAS:
                reason += (
                    f"; install it with: pip install 'dynamo_planner[{_EXTRAS[top]}]'"
                )
            raise PluginLoadError(
                group=group.value, name=name, target=target, reason=reason
            ) from exc


def _read_entry_points(group: PluginGroup) -> dict[str, object]:
    """Installed entry points of ``group`` by name (metadata only; nothing imported).

    Two distributions registering the same name for different targets is an error when
    that name is loaded, not when listing.
    """
    found: dict[str, object] = {}
    for entry in _entry_points(group.value):
        previous = found.get(entry.name)
        if isinstance(previous, metadata.EntryPoint) and previous.value != entry.value:
            found[entry.name] = _Conflict(group, entry.name, (previous, entry))
        elif not isinstance(previous, _Conflict):
            found[entry.name] = entry
    return found


def _entry_points(group: str) -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=group)


class _Conflict:
    """Stands in for a name two distributions register differently; fails on load."""

    def __init__(
        self, group: PluginGroup, name: str, entries: tuple[metadata.EntryPoint, ...]
    ) -> None:
        self.group = group
        self.name = name
        self.entries = entries

    def error(self) -> PluginError:
        """The error loading this name raises."""
        targets = " and ".join(
            f"{e.value} (from {e.dist.name if e.dist else 'an unknown distribution'})"
            for e in self.entries
        )
        return PluginError(
            f"plugin {self.name!r} of group {self.group.value!r} is registered twice, "
            f"as {targets}; uninstall one of them"
        )


@functools.cache
def default_registry() -> Registry:
    """The registry of installed entry points, created on first use and then shared.

    .. versionadded:: 0.1.0
    """
    return Registry()
