"""Reading a DynamoGraphDeployment (DGD) custom resource: pure functions (spec §6.2).

Everything here takes the DGD as the JSON dict the API server returns and does no I/O, so
it is tested directly on dicts.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from dynamo_planner.exceptions import ConnectorError, DeploymentValidationError

__all__ = [
    "DGD_GROUP",
    "DGD_PLURAL",
    "DGD_VERSION",
    "SCALING_ADAPTER_PLURAL",
    "WORKER_COMPONENT_NAMES",
    "DeploymentModelNameMismatchError",
    "DuplicateSubComponentError",
    "ScalingTimeoutError",
    "SubComponentNotFoundError",
    "UserProvidedModelNameMismatchError",
    "engine_gpus",
    "frontend_metrics_url",
    "is_ready",
    "model_name_from_args",
    "model_name_of",
    "resolve_service",
    "scaling_adapter_name",
    "service_spec",
    "worker_count",
]

_CONNECTOR = "kubernetes"

DGD_GROUP = "nvidia.com"
DGD_VERSION = "v1alpha1"
DGD_PLURAL = "dynamographdeployments"
SCALING_ADAPTER_PLURAL = "dynamographdeploymentscalingadapters"

WORKER_COMPONENT_NAMES: Mapping[str, tuple[str, str]] = {
    "vllm": ("VllmPrefillWorker", "VllmDecodeWorker"),
    "sglang": ("prefill", "decode"),
    "trtllm": ("TRTLLMPrefillWorker", "TRTLLMDecodeWorker"),
    "mocker": ("prefill", "decode"),
}
"""Legacy service names per backend: (prefill, decode)."""


class DuplicateSubComponentError(DeploymentValidationError):
    """More than one DGD service has the same ``subComponentType``.

    .. versionadded:: 0.1.0
    """


class SubComponentNotFoundError(DeploymentValidationError):
    """No DGD service has the ``subComponentType``, nor the backend's legacy name.

    .. versionadded:: 0.1.0
    """


class DeploymentModelNameMismatchError(DeploymentValidationError):
    """The prefill and decode services serve different models.

    .. versionadded:: 0.1.0
    """


class UserProvidedModelNameMismatchError(DeploymentValidationError):
    """The configured model name differs from the one the deployment serves.

    .. versionadded:: 0.1.0
    """


class ScalingTimeoutError(ConnectorError, TimeoutError):
    """The deployment did not become ready within the wait limit.

    .. versionadded:: 0.1.0
    """


def _services(dgd: Mapping[str, Any]) -> Mapping[str, Any]:
    services = (dgd.get("spec") or {}).get("services") or {}
    if not isinstance(services, Mapping):
        raise DeploymentValidationError(
            "spec.services is not an object", connector=_CONNECTOR
        )
    return services


def service_spec(dgd: Mapping[str, Any], service: str) -> Mapping[str, Any]:
    """The spec of one service (``spec.services.<service>``).

    Raises:
        SubComponentNotFoundError: There is no such service.
    """
    spec = _services(dgd).get(service)
    if not isinstance(spec, Mapping):
        raise SubComponentNotFoundError(
            f"service {service!r} not in spec.services", connector=_CONNECTOR
        )
    return spec


def resolve_service(
    dgd: Mapping[str, Any], sub_component_type: str, backend: str
) -> str:
    """The name of the service that runs ``prefill`` or ``decode`` workers.

    1. The one service whose ``subComponentType`` is ``sub_component_type``;
    2. else the backend's legacy name, if that service exists with an empty
       ``subComponentType``.

    Raises:
        DuplicateSubComponentError: Several services have that ``subComponentType``.
        SubComponentNotFoundError: Neither rule finds a service.
    """
    services = _services(dgd)
    matches = sorted(
        name
        for name, spec in services.items()
        if isinstance(spec, Mapping)
        and spec.get("subComponentType") == sub_component_type
    )
    if len(matches) > 1:
        raise DuplicateSubComponentError(
            f"services {matches} all have subComponentType {sub_component_type!r}",
            connector=_CONNECTOR,
        )
    if matches:
        return matches[0]
    names = WORKER_COMPONENT_NAMES.get(backend)
    if names is not None:
        legacy = names[0] if sub_component_type == "prefill" else names[1]
        spec = services.get(legacy)
        if isinstance(spec, Mapping) and not spec.get("subComponentType"):
            return legacy
    raise SubComponentNotFoundError(
        f"no service with subComponentType {sub_component_type!r}"
        + (f" and no legacy {backend} service without one" if names else "")
        + f" (services: {sorted(services)})",
        connector=_CONNECTOR,
    )


def _split_args(args: Any) -> list[str]:
    if args is None:
        return []
    if isinstance(args, str):
        return shlex.split(args)
    if isinstance(args, Sequence):
        out: list[str] = []
        for item in args:
            out.extend(shlex.split(str(item)))
        return out
    return []


def model_name_from_args(args: Any) -> str | None:
    """The served model in engine arguments (a string or a list, shell-split).

    Precedence: ``--served-model-name``, then ``--model-name`` (mocker), then ``--model``;
    ``--flag value`` and ``--flag=value`` both count.
    """
    tokens = _split_args(args)
    found: dict[str, str] = {}
    for i, token in enumerate(tokens):
        flag, eq, value = token.partition("=")
        if flag not in ("--served-model-name", "--model-name", "--model"):
            continue
        if not eq:
            if i + 1 >= len(tokens):
                continue
            value = tokens[i + 1]
        found.setdefault(flag, value)
    for flag in ("--served-model-name", "--model-name", "--model"):
        if found.get(flag):
            return found[flag]
    return None


def _service_model(dgd: Mapping[str, Any], service: str) -> str | None:
    spec = service_spec(dgd, service)
    pod = spec.get("extraPodSpec") or {}
    container = pod.get("mainContainer") or {} if isinstance(pod, Mapping) else {}
    args = container.get("args") if isinstance(container, Mapping) else None
    return model_name_from_args(args)


def model_name_of(
    dgd: Mapping[str, Any], services: Sequence[str], user_model_name: str | None = None
) -> str:
    """The served model of the worker services, lower-cased.

    Raises:
        DeploymentModelNameMismatchError: Two services serve different models.
        UserProvidedModelNameMismatchError: It differs from ``user_model_name``.
        DeploymentValidationError: No model name could be read and none was given.
    """
    names = {s: _service_model(dgd, s) for s in services}
    found = {s: n for s, n in names.items() if n}
    distinct = set(found.values())
    if len(distinct) > 1:
        raise DeploymentModelNameMismatchError(
            f"services serve different models: {found}", connector=_CONNECTOR
        )
    parsed = next(iter(distinct), None)
    if parsed is None:
        if user_model_name:
            return user_model_name.lower()
        raise DeploymentValidationError(
            f"no --served-model-name/--model-name/--model in the args of {list(services)}",
            connector=_CONNECTOR,
        )
    if user_model_name and user_model_name.lower() != parsed.lower():
        raise UserProvidedModelNameMismatchError(
            f"configured model {user_model_name!r} but the deployment serves {parsed!r}",
            connector=_CONNECTOR,
        )
    return parsed.lower()


def engine_gpus(spec: Mapping[str, Any]) -> int:
    """GPUs of one engine: ``resources.limits.gpu``, else ``resources.requests.gpu``.

    Raises:
        ValueError: Neither is set to a positive integer.
    """
    resources = spec.get("resources") or {}
    for section in ("limits", "requests"):
        block = resources.get(section) if isinstance(resources, Mapping) else None
        if isinstance(block, Mapping) and block.get("gpu") is not None:
            raw = block["gpu"]
            try:
                gpus = int(str(raw))
            except ValueError:
                msg = f"resources.{section}.gpu is {raw!r}, not an integer"
                raise ValueError(msg) from None
            if gpus < 1:
                msg = f"resources.{section}.gpu is {gpus}, not positive"
                raise ValueError(msg)
            return gpus
    msg = "no resources.limits.gpu or resources.requests.gpu"
    raise ValueError(msg)


def is_ready(dgd: Mapping[str, Any]) -> bool:
    """True when ``status.conditions`` has ``type: Ready`` with ``status: "True"``."""
    conditions = (dgd.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, Mapping)
        and c.get("type") == "Ready"
        and c.get("status") == "True"
        for c in conditions
    )


def worker_count(dgd: Mapping[str, Any], service: str) -> tuple[int, bool]:
    """Running workers of a service and whether it is stable.

    The count is ``status.services.<name>.availableReplicas``, else ``readyReplicas``
    (default 0). Stable means spec ``replicas == updatedReplicas == count``.
    """
    status = ((dgd.get("status") or {}).get("services") or {}).get(service) or {}
    if status.get("availableReplicas") is not None:
        count = int(status["availableReplicas"])
    else:
        count = int(status.get("readyReplicas") or 0)
    spec = _services(dgd).get(service) or {}
    desired = spec.get("replicas")
    updated = status.get("updatedReplicas")
    stable = (
        desired is not None
        and updated is not None
        and int(desired) == int(updated) == count
    )
    return count, stable


def scaling_adapter_name(dgd_name: str, service: str) -> str:
    """The DynamoGraphDeploymentScalingAdapter of a service: ``{dgd}-{service.lower()}``."""
    return f"{dgd_name}-{service.lower()}"


def frontend_metrics_url(dgd: Mapping[str, Any], dgd_name: str) -> str:
    """The frontend's metrics URL: ``http://{dgd}-{frontend.lower()}:8000/metrics``.

    Raises:
        DeploymentValidationError: No service has ``componentType: frontend``.
    """
    for name, spec in _services(dgd).items():
        if isinstance(spec, Mapping) and spec.get("componentType") == "frontend":
            return f"http://{dgd_name}-{name.lower()}:8000/metrics"
    raise DeploymentValidationError(
        "no service with componentType 'frontend' to read router metrics from",
        connector=_CONNECTOR,
    )
