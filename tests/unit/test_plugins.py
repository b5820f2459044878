"""Tests for dynamo_planner.plugins: the entry-point registry."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynamo_planner import plugins
from dynamo_planner._compat import metadata
from dynamo_planner.exceptions import (
    PluginContractError,
    PluginError,
    PluginLoadError,
    PluginNotFoundError,
)
from dynamo_planner.plugins import PluginGroup, Registry, default_registry
from dynamo_planner.protocols import Connector, Interpolator, Predictor

CONNECTORS = "dynamo_planner.connectors"


class GoodConnector:
    """Satisfies the Connector protocol and has from_config."""

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> GoodConnector:
        return cls()

    async def current(self) -> Any:
        return None

    async def apply(self, plan: Any, *, blocking: bool = False) -> None:
        return None

    async def aclose(self) -> None:
        return None


class SyncApplyConnector(GoodConnector):
    """apply is synchronous where the protocol's is async."""

    def apply(self, plan: Any, *, blocking: bool = False) -> None:  # type: ignore[override]
        return None


class NoApplyConnector:
    """Lacks apply."""

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> NoApplyConnector:
        return cls()

    async def current(self) -> Any:
        return None

    async def aclose(self) -> None:
        return None


class NoConstructorConnector:
    """Has the protocol's methods but no from_config."""

    async def current(self) -> Any:
        return None

    async def apply(self, plan: Any, *, blocking: bool = False) -> None:
        return None

    async def aclose(self) -> None:
        return None


class GoodPredictor:
    """Satisfies the Predictor protocol and has from_config."""

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> GoodPredictor:
        return cls()

    def observe(self, value: float) -> None:
        return None

    def predict(self) -> Any:
        return None


@pytest.fixture(name="module_dir")
def _module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for throwaway plugin modules."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("plugtest_")]:
        del sys.modules[name]


def _write_module(directory: Path, body: str) -> str:
    name = f"plugtest_{uuid.uuid4().hex}"
    (directory / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return name


CONNECTOR_MODULE = """
    class Conn:
        @classmethod
        def from_config(cls, config, **kwargs):
            return cls()

        async def current(self):
            return None

        async def apply(self, plan, *, blocking=False):
            return None

        async def aclose(self):
            return None
"""


class TestPluginGroup:
    """The five groups and their contracts."""

    def test_group_names(self) -> None:
        """The groups are the ones DESIGN.md names."""
        assert [
            "dynamo_planner.predictors",
            "dynamo_planner.interpolators",
            "dynamo_planner.scalers",
            "dynamo_planner.metric_sources",
            "dynamo_planner.connectors",
        ] == [g.value for g in PluginGroup]

    @pytest.mark.parametrize(
        "name", ["dynamo_planner.connectors", "connectors", PluginGroup.CONNECTORS]
    )
    def test_of(self, name: str) -> None:
        """A group is found by full name, short name or member."""
        assert PluginGroup.CONNECTORS is PluginGroup.of(name)

    def test_unknown_group(self) -> None:
        """An unknown group is an error listing the groups."""
        with pytest.raises(PluginError, match=r"dynamo_planner\.scalers"):
            PluginGroup.of("dynamo_planner.widgets")

    def test_protocols_and_constructors(self) -> None:
        """Each group maps to its Protocol and named constructor."""
        assert Predictor is PluginGroup.PREDICTORS.protocol
        assert Connector is PluginGroup.CONNECTORS.protocol
        assert Interpolator is PluginGroup.INTERPOLATORS.protocol
        assert "from_profile" == PluginGroup.INTERPOLATORS.constructor
        assert "from_config" == PluginGroup.SCALERS.constructor


class TestInjected:
    """A registry built from a mapping serves exactly what it was given."""

    def test_load_object(self) -> None:
        """An injected class is returned as is."""
        registry = Registry({CONNECTORS: {"good": GoodConnector}})
        assert GoodConnector is registry.load(PluginGroup.CONNECTORS, "good")

    def test_short_group_name(self) -> None:
        """Groups may be given by their short name."""
        registry = Registry({"connectors": {"good": GoodConnector}})
        assert GoodConnector is registry.load("connectors", "good")

    def test_available_sorted_and_isolated(self) -> None:
        """available() lists the injected names only, sorted."""
        registry = Registry({CONNECTORS: {"b": GoodConnector, "a": GoodConnector}})
        assert ("a", "b") == registry.available(CONNECTORS)
        assert () == registry.available(PluginGroup.PREDICTORS)

    def test_string_target(self, module_dir: Path) -> None:
        """A 'module:attr' string is imported on load."""
        module = _write_module(module_dir, CONNECTOR_MODULE)
        registry = Registry({CONNECTORS: {"c": f"{module}:Conn"}})
        loaded = registry.load(CONNECTORS, "c")
        assert "Conn" == loaded.__name__
        assert module == loaded.__module__

    def test_with_plugin(self) -> None:
        """with_plugin returns a new registry; the original is unchanged."""
        registry = Registry({CONNECTORS: {"a": GoodConnector}})
        bigger = registry.with_plugin("predictors", "p", GoodPredictor)
        assert ("p",) == bigger.available(PluginGroup.PREDICTORS)
        assert ("a",) == bigger.available(CONNECTORS)
        assert () == registry.available(PluginGroup.PREDICTORS)

    def test_on_top_of_installed(self) -> None:
        """installed=True adds the injected plugins to the installed ones."""
        registry = Registry({CONNECTORS: {"mine": GoodConnector}}, installed=True)
        names = registry.available(CONNECTORS)
        assert "mine" in names
        assert "virtual" in names

    def test_shadows_installed(self) -> None:
        """An injected plugin replaces an installed one of the same name."""
        registry = Registry({CONNECTORS: {"log": GoodConnector}}, installed=True)
        assert GoodConnector is registry.load(CONNECTORS, "log")


class TestNotFound:
    """An unknown name fails loudly with what is available."""

    def test_lists_available(self) -> None:
        """The error names the group, the name and the available names."""
        registry = Registry(
            {CONNECTORS: {"alpha": GoodConnector, "beta": GoodConnector}}
        )
        with pytest.raises(PluginNotFoundError) as info:
            registry.load(CONNECTORS, "gamma")
        error = info.value
        assert ("alpha", "beta") == error.available
        assert (CONNECTORS, "gamma") == (error.group, error.name)
        assert "available: alpha, beta" in str(error)
        assert "not installed" in str(error)
        assert isinstance(error, LookupError)

    def test_empty_group(self) -> None:
        """An empty group says none are available."""
        with pytest.raises(PluginNotFoundError, match="available: none"):
            Registry({}).load(PluginGroup.SCALERS, "reference")

    def test_installed_names_listed(self) -> None:
        """With installed entry points, the built-in names are listed."""
        with pytest.raises(PluginNotFoundError) as info:
            Registry().load(CONNECTORS, "no_such_connector")
        assert {"kubernetes", "log", "virtual"} <= set(info.value.available)


class TestLoadError:
    """An import failure is a PluginLoadError chained to its cause."""

    def test_missing_module(self) -> None:
        """A target whose module does not exist fails with the ImportError chained."""
        registry = Registry({CONNECTORS: {"x": "plugtest_absent_module_zz:Conn"}})
        with pytest.raises(PluginLoadError) as info:
            registry.load(CONNECTORS, "x")
        error = info.value
        assert "plugtest_absent_module_zz:Conn" == error.target
        assert isinstance(error.__cause__, ModuleNotFoundError)
        assert isinstance(error, ImportError)
        assert "plugtest_absent_module_zz" in str(error)

    def test_missing_attribute(self, module_dir: Path) -> None:
        """A target naming an absent attribute fails with the AttributeError chained."""
        module = _write_module(module_dir, CONNECTOR_MODULE)
        registry = Registry({CONNECTORS: {"x": f"{module}:Nope"}})
        with pytest.raises(PluginLoadError) as info:
            registry.load(CONNECTORS, "x")
        assert isinstance(info.value.__cause__, AttributeError)

    def test_malformed_target(self) -> None:
        """A string that is no 'module:attr' reference is refused."""
        registry = Registry({CONNECTORS: {"x": "not a target!"}})
        with pytest.raises(PluginLoadError, match="module:attr"):
            registry.load(CONNECTORS, "x")

    def test_extra_hint(self, module_dir: Path) -> None:
        """A missing optional dependency names the extra to install."""
        module = _write_module(
            module_dir,
            """
            raise ModuleNotFoundError("No module named 'etcd3gw'", name="etcd3gw")
            """,
        )
        registry = Registry({CONNECTORS: {"x": f"{module}:Conn"}})
        with pytest.raises(PluginLoadError, match=r"dynamo_planner\[live\]"):
            registry.load(CONNECTORS, "x")

    def test_duplicate_registration(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Two distributions registering one name for different targets is an error."""
        entries = [
            metadata.EntryPoint(name="dup", value="pkg_a:Conn", group=CONNECTORS),
            metadata.EntryPoint(name="dup", value="pkg_b:Conn", group=CONNECTORS),
            metadata.EntryPoint(name="solo", value="pkg_c:Conn", group=CONNECTORS),
        ]
        monkeypatch.setattr(plugins, "_entry_points", lambda group: entries)
        registry = Registry()
        assert ("dup", "solo") == registry.available(CONNECTORS)
        with pytest.raises(
            PluginError, match=r"registered twice.*pkg_a:Conn.*pkg_b:Conn"
        ):
            registry.load(CONNECTORS, "dup")

    def test_same_target_twice_is_fine(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The same target listed twice (e.g. a stale install) is not a conflict."""
        target = f"{__name__}:GoodConnector"
        entries = [
            metadata.EntryPoint(name="same", value=target, group=CONNECTORS),
            metadata.EntryPoint(name="same", value=target, group=CONNECTORS),
        ]
        monkeypatch.setattr(plugins, "_entry_points", lambda group: entries)
        assert GoodConnector is Registry().load(CONNECTORS, "same")


class TestContract:
    """A loaded plugin must have its group's methods and named constructor."""

    def test_good_plugins_pass(self) -> None:
        """Classes with every method and the constructor pass the check."""
        registry = Registry({})
        registry.check(CONNECTORS, "good", GoodConnector)
        registry.check(PluginGroup.PREDICTORS, "good", GoodPredictor)

    def test_missing_method(self) -> None:
        """A missing protocol method is named."""
        registry = Registry({CONNECTORS: {"x": NoApplyConnector}})
        with pytest.raises(PluginContractError, match="no method apply") as info:
            registry.load(CONNECTORS, "x")
        assert "Connector" in info.value.protocol
        assert isinstance(info.value, TypeError)

    def test_sync_method_where_async_expected(self) -> None:
        """A synchronous method where the protocol is async is refused."""
        with pytest.raises(PluginContractError, match="apply is not async"):
            Registry({}).check(CONNECTORS, "x", SyncApplyConnector)

    def test_missing_constructor(self) -> None:
        """A class without the group's named constructor is refused."""
        with pytest.raises(PluginContractError, match="no classmethod from_config"):
            Registry({}).check(CONNECTORS, "x", NoConstructorConnector)

    def test_wrong_group(self) -> None:
        """A connector is not a predictor."""
        with pytest.raises(PluginContractError, match="no method observe"):
            Registry({}).check(PluginGroup.PREDICTORS, "x", GoodConnector)

    def test_interpolator_needs_from_profile(self) -> None:
        """Interpolators are built from a profile, not a config."""
        with pytest.raises(PluginContractError, match="from_profile"):
            Registry({}).check(PluginGroup.INTERPOLATORS, "x", GoodPredictor)

    def test_instance_refused(self) -> None:
        """An instance is not a plugin class."""
        with pytest.raises(PluginContractError, match="expected a class"):
            Registry({}).check(CONNECTORS, "x", GoodConnector())

    def test_failed_check_not_cached(self) -> None:
        """A plugin that failed its check fails again on the next load."""
        registry = Registry({CONNECTORS: {"x": NoApplyConnector}})
        for _ in range(2):
            with pytest.raises(PluginContractError):
                registry.load(CONNECTORS, "x")


class TestCaching:
    """Entry points are read once per group; each plugin is imported once."""

    def test_load_cached(self, module_dir: Path) -> None:
        """A second load returns the same object without importing again."""
        module = _write_module(module_dir, CONNECTOR_MODULE)
        registry = Registry({CONNECTORS: {"c": f"{module}:Conn"}})
        first = registry.load(CONNECTORS, "c")
        del sys.modules[module]
        assert first is registry.load(CONNECTORS, "c")
        assert module not in sys.modules

    def test_entry_points_read_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Installed metadata is read once per group, however often it is asked."""
        calls: list[str] = []
        real = plugins._entry_points

        def counting(group: str) -> Any:
            calls.append(group)
            return real(group)

        monkeypatch.setattr(plugins, "_entry_points", counting)
        registry = Registry()
        for _ in range(3):
            registry.available(CONNECTORS)
        with pytest.raises(PluginNotFoundError):
            registry.load(CONNECTORS, "nope")
        assert [CONNECTORS] == calls

    def test_default_registry_shared(self) -> None:
        """default_registry() returns one shared registry of installed plugins."""
        assert default_registry() is default_registry()
        assert "arima" in default_registry().available(PluginGroup.PREDICTORS)


class TestLazy:
    """Listing never imports; importing the module reads nothing."""

    def test_available_does_not_import(self, module_dir: Path) -> None:
        """available() lists a string target without importing its module."""
        module = _write_module(module_dir, CONNECTOR_MODULE)
        registry = Registry({CONNECTORS: {"c": f"{module}:Conn"}})
        assert ("c",) == registry.available(CONNECTORS)
        assert module not in sys.modules
        registry.load(CONNECTORS, "c")
        assert module in sys.modules

    def test_installed_available_imports_nothing(self) -> None:
        """Listing every installed group imports none of the plugin modules."""
        code = textwrap.dedent(
            """
            import sys
            from dynamo_planner.plugins import PluginGroup, default_registry
            before = set(sys.modules)
            registry = default_registry()
            names = {g.value: registry.available(g) for g in PluginGroup}
            assert names["dynamo_planner.predictors"], names
            new = sorted(set(sys.modules) - before)
            plugin_modules = [m for m in new if m.startswith((
                "dynamo_planner.predictors", "dynamo_planner.interpolators",
                "dynamo_planner.scalers", "dynamo_planner.sources",
                "dynamo_planner.connectors", "pmdarima", "prophet", "httpx",
            ))]
            print(plugin_modules)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "[]" == result.stdout.strip()

    def test_import_is_cheap(self) -> None:
        """Importing dynamo_planner and its plugins reads no entry points and loads no
        heavy library, numpy included: a plan or an observation needs none."""
        code = textwrap.dedent(
            """
            import sys
            from dynamo_planner._compat import metadata
            calls = []
            real = metadata.entry_points
            metadata.entry_points = lambda *a, **k: calls.append(k) or real(*a, **k)
            import dynamo_planner.plugins
            import dynamo_planner
            libraries = ("numpy", "scipy", "pmdarima", "prophet", "filterpy", "httpx")
            heavy = [m for m in libraries if m in sys.modules]
            print(len(calls), heavy)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "0 []" == result.stdout.strip()
