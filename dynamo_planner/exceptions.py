"""Every error and warning dynamo_planner raises.

The hierarchy, so that ``except PlannerError`` catches everything the library raises::

    PlannerError(Exception)
    ├── ConfigError(PlannerError, ValueError)         .field .value
    ├── PluginError(PlannerError)
    │   ├── PluginNotFoundError(PluginError, LookupError)  .group .name .available
    │   ├── PluginLoadError(PluginError, ImportError)      .group .name .target
    │   └── PluginContractError(PluginError, TypeError)    .group .name .protocol
    ├── NotReadyError(PlannerError, RuntimeError)
    ├── ProfileError(PlannerError, ValueError)         .path .field
    ├── TraceError(PlannerError, ValueError)           .path .line
    ├── InfeasibleSLAError(PlannerError, ValueError)
    ├── MetricSourceError(PlannerError)                .source
    │   └── MalformedMetricsError(MetricSourceError, ValueError)
    └── ConnectorError(PlannerError)                   .connector
        ├── DeploymentValidationError(ConnectorError, ValueError)
        └── ScalingDeferredError(ConnectorError)
    PlannerWarning(UserWarning)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConfigError",
    "ConnectorError",
    "DeploymentValidationError",
    "InfeasibleSLAError",
    "MalformedMetricsError",
    "MetricSourceError",
    "NotReadyError",
    "PlannerError",
    "PlannerWarning",
    "PluginContractError",
    "PluginError",
    "PluginLoadError",
    "PluginNotFoundError",
    "ProfileError",
    "ScalingDeferredError",
    "TraceError",
]


class PlannerError(Exception):
    """Root of every error raised by dynamo_planner.

    Every error pickles with its message and attributes, so one raised in a worker
    process (``concurrent.futures.ProcessPoolExecutor``, ``multiprocessing``) reaches
    the parent as itself. The errors take keyword-only arguments and format them into
    their message, which the default pickling (calling the class with the message
    alone) cannot rebuild.

    .. versionadded:: 0.1.0
    """

    def __reduce__(self) -> tuple[object, ...]:
        state = dict(vars(self))
        if isinstance(self, ImportError):
            # ImportError keeps name and path in slots, not in the instance dict
            state.update(name=self.name, path=self.path)
        return (_rebuild, (type(self), self.args, state))


def _rebuild(
    cls: type[PlannerError], args: tuple[object, ...], state: dict[str, object]
) -> PlannerError:
    """Unpickle a :class:`PlannerError` without calling its ``__init__`` again."""
    error = cls.__new__(cls, *args)
    for name, value in state.items():
        setattr(error, name, value)
    return error


class ConfigError(PlannerError, ValueError):
    """A configuration value is missing, of the wrong type or out of range.

    Attributes:
        field: The configuration field, dotted for nested values (``"ttft_ms"``).
        value: The offending value, if there was one.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, field: str, value: object = None) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}: {message}")


class PluginError(PlannerError):
    """A plugin could not be found, loaded or used.

    .. versionadded:: 0.1.0
    """


class PluginNotFoundError(PluginError, LookupError):
    """No entry point of that name is installed in that group.

    Attributes:
        group: The entry-point group searched.
        name: The name asked for.
        available: The names that are installed.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, group: str, name: str, available: Sequence[str]) -> None:
        self.group = group
        self.name = name
        self.available = tuple(available)
        names = ", ".join(self.available) or "none"
        super().__init__(
            f"no plugin {name!r} in entry-point group {group!r} "
            f"(available: {names}); is it misspelled or not installed?"
        )


class PluginLoadError(PluginError, ImportError):
    """An entry point exists but importing its target failed.

    Attributes:
        group: The entry-point group.
        name: The plugin name.
        target: The ``module:attr`` the entry point names.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, group: str, name: str, target: str, reason: str) -> None:
        self.group = group
        self.name = name
        self.target = target
        super().__init__(
            f"plugin {name!r} of group {group!r} ({target}) failed to load: {reason}"
        )


class PluginContractError(PluginError, TypeError):
    """A loaded plugin does not implement the protocol of its group.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, group: str, name: str, protocol: str) -> None:
        self.group = group
        self.name = name
        self.protocol = protocol
        super().__init__(
            f"plugin {name!r} of group {group!r} does not implement {protocol}"
        )


class NotReadyError(PlannerError, RuntimeError):
    """An object was used before it had what it needs (e.g. no observation yet).

    .. versionadded:: 0.1.0
    """


class ProfileError(PlannerError, ValueError):
    """A performance profile is missing, malformed or inconsistent.

    Attributes:
        path: The file (or directory) read.
        field: The array or key at fault, if one is.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, path: str, field: str | None = None) -> None:
        self.path = path
        self.field = field
        where = f"{path}: {field}" if field else path
        super().__init__(f"{where}: {message}")


class TraceError(PlannerError, ValueError):
    """A trace file is missing or has a malformed record.

    Attributes:
        path: The file read.
        line: The 1-based line (or CSV row) number, if known.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class InfeasibleSLAError(PlannerError, ValueError):
    """No number of replicas can meet the latency target (e.g. one request alone is too slow).

    .. versionadded:: 0.1.0
    """


class MetricSourceError(PlannerError):
    """A metric source could not fetch an observation.

    Attributes:
        source: The source's name.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, source: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


class MalformedMetricsError(MetricSourceError, ValueError):
    """A metric source answered, but the answer could not be understood.

    .. versionadded:: 0.1.0
    """


class ConnectorError(PlannerError):
    """A connector could not read or change the deployment.

    Attributes:
        connector: The connector's name.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, connector: str) -> None:
        self.connector = connector
        super().__init__(f"{connector}: {message}")


class DeploymentValidationError(ConnectorError, ValueError):
    """The deployment does not have what the planner needs (services, model, GPUs).

    .. versionadded:: 0.1.0
    """


class ScalingDeferredError(ConnectorError):
    """A decision was held back because the deployment has not finished the last one.

    The planner does not count it as applied, so it tries again on its next interval.

    .. versionadded:: 0.1.0
    """


class PlannerWarning(UserWarning):
    """Base of the warnings dynamo_planner emits.

    .. versionadded:: 0.1.0
    """
