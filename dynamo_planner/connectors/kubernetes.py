"""The Kubernetes connector: scale a DynamoGraphDeployment (spec §6.2).

It reads and changes the ``DynamoGraphDeployment`` (``nvidia.com/v1alpha1``) named by
``DYN_PARENT_DGD_K8S_NAME`` with the official ``kubernetes`` client:

* the prefill and decode services are found by ``subComponentType``, else by the backend's
  legacy name (:func:`~dynamo_planner.connectors._dgd.resolve_service`);
* the model name and GPUs per engine are read from the services' specs;
* running workers come from ``status.services`` (``availableReplicas``, else
  ``readyReplicas``);
* a change patches the **scale subresource** of the service's
  ``DynamoGraphDeploymentScalingAdapter`` (``{dgd}-{service.lower()}``); an operator without
  adapters (404) gets a JSON merge-patch of the DGD instead;
* a DGD that is not ``Ready`` is not scaled (the plan is dropped, as the reference does);
  a service already at its target is not patched.

Conflicts (409), throttling (429), server errors (5xx) and lost connections are retried
with backoff. Before each retry the connector reads the replicas back, so a change whose
answer was lost is not made twice.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from dynamo_planner.connectors._dgd import (
    DGD_GROUP,
    DGD_PLURAL,
    DGD_VERSION,
    SCALING_ADAPTER_PLURAL,
    DeploymentModelNameMismatchError,
    DuplicateSubComponentError,
    ScalingTimeoutError,
    SubComponentNotFoundError,
    UserProvidedModelNameMismatchError,
    engine_gpus,
    frontend_metrics_url,
    is_ready,
    model_name_of,
    resolve_service,
    scaling_adapter_name,
    service_spec,
    worker_count,
)
from dynamo_planner.exceptions import ConnectorError, DeploymentValidationError
from dynamo_planner.values import ReplicaPlan, ReplicaState

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.protocols import Clock

__all__ = [
    "DeploymentModelNameMismatchError",
    "DuplicateSubComponentError",
    "KubernetesConnector",
    "ScalingTimeoutError",
    "SubComponentNotFoundError",
    "UserProvidedModelNameMismatchError",
]

logger = logging.getLogger(__name__)

_CONNECTOR = "kubernetes"
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_MERGE_PATCH = "application/merge-patch+json"
_RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})
_T = TypeVar("_T")


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return int(status) if isinstance(status, int) else None


def _is_api_error(exc: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException

    return isinstance(exc, ApiException)


def _retryable(exc: BaseException) -> bool:
    if _is_api_error(exc):
        status = _status_of(exc)
        return status is None or status == 0 or status in _RETRYABLE
    import urllib3

    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


def _components(mode: str) -> tuple[bool, bool]:
    return mode in ("disagg", "prefill"), mode in ("disagg", "decode", "agg")


def _real_clock() -> Clock:
    from dynamo_planner.planner import SystemClock

    return SystemClock()


def read_k8s_namespace(path: Path = _NAMESPACE_FILE) -> str:
    """The pod's namespace from the service-account file, else ``default``."""
    try:
        return path.read_text().strip() or "default"
    except OSError:
        return "default"


def load_custom_objects_api() -> Any:
    """A ``CustomObjectsApi`` from in-cluster config, else from the kubeconfig.

    Raises:
        ConnectorError: Neither configuration could be loaded.
    """
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        try:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError) as exc:
            raise ConnectorError(
                f"no in-cluster config and no kubeconfig: {exc}", connector=_CONNECTOR
            ) from exc
    return client.CustomObjectsApi()


@attrs.define(kw_only=True)
class KubernetesConnector:
    """Reads and scales a DynamoGraphDeployment.

    Args:
        api: A ``kubernetes.client.CustomObjectsApi``.
        dgd_name: The DGD's name (``DYN_PARENT_DGD_K8S_NAME``).
        k8s_namespace: Its Kubernetes namespace.
        backend: ``vllm``, ``sglang``, ``trtllm`` or ``mocker`` (legacy service names).
        mode: ``disagg``, ``prefill``, ``decode`` or ``agg``: which services must exist.
        model_name: A configured model name, checked against the deployment's.
        check_interval_s: Sleep before each readiness check of a blocking apply.
        max_wait_s: Longest wait for readiness.
        retries: Further attempts after a retryable API failure.
        backoff_s: Sleep before the first retry; doubled for each further one.
        clock: Time for the waits.

    .. versionadded:: 0.1.0
    """

    api: Any
    dgd_name: str
    k8s_namespace: str = "default"
    backend: str = "vllm"
    mode: str = "disagg"
    model_name: str | None = None
    check_interval_s: float = attrs.field(
        default=10.0, validator=attrs.validators.gt(0)
    )
    max_wait_s: float = attrs.field(default=1800.0, validator=attrs.validators.ge(0))
    retries: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    backoff_s: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    clock: Clock = attrs.field(factory=_real_clock)
    patches_total: int = attrs.field(init=False, default=0)
    """Replica changes sent and accepted so far."""
    _adapters: bool | None = attrs.field(init=False, default=None)

    @classmethod
    def from_config(
        cls,
        config: PlannerConfig,
        *,
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> KubernetesConnector:
        """Build from the configuration and the pod's environment.

        Args:
            config: The planner configuration.
            environ: Environment variables (``os.environ`` by default).
            **kwargs: Override any field (e.g. ``api`` for a preconfigured client).

        Raises:
            DeploymentValidationError: ``DYN_PARENT_DGD_K8S_NAME`` is not set.
        """
        env = os.environ if environ is None else environ
        options: dict[str, Any] = {
            "backend": config.backend,
            "mode": config.mode,
            "model_name": config.model_name,
            "check_interval_s": config.scaling_check_interval_s,
            "max_wait_s": config.scaling_max_wait_s,
        }
        options.update(kwargs)
        if "dgd_name" not in options:
            name = env.get("DYN_PARENT_DGD_K8S_NAME")
            if not name:
                raise DeploymentValidationError(
                    "DYN_PARENT_DGD_K8S_NAME is not set (the operator sets it to the "
                    "DynamoGraphDeployment's name)",
                    connector=_CONNECTOR,
                )
            options["dgd_name"] = name
        options.setdefault("k8s_namespace", read_k8s_namespace())
        if "api" not in options:
            options["api"] = load_custom_objects_api()
        return cls(**options)

    # ----------------------------------------------------------------- API calls
    async def _call(self, what: str, func: Callable[[], _T]) -> _T:
        """Run a blocking client call with retries on retryable failures."""
        for attempt in range(self.retries + 1):
            try:
                return await asyncio.to_thread(func)
            except Exception as exc:
                if not _retryable(exc) or attempt == self.retries:
                    raise self._error(what, exc) from exc
                delay = self.backoff_s * 2**attempt
                logger.warning(
                    "%s failed (%s); retrying in %.2f s", what, self._why(exc), delay
                )
                await asyncio.sleep(delay)
        raise AssertionError  # pragma: no cover (the loop returns or raises)

    @staticmethod
    def _why(exc: BaseException) -> str:
        status = _status_of(exc)
        if status:
            return f"HTTP {status} {getattr(exc, 'reason', '')}".strip()
        return f"{type(exc).__name__}: {exc}"

    def _error(self, what: str, exc: BaseException) -> ConnectorError:
        return ConnectorError(f"{what}: {self._why(exc)}", connector=_CONNECTOR)

    async def get_deployment(self) -> dict[str, Any]:
        """The DGD as a dict.

        Raises:
            ConnectorError: The API server failed (after retries) or the DGD is missing.
        """
        dgd = await self._call(
            f"GET {DGD_PLURAL}/{self.dgd_name}",
            lambda: self.api.get_namespaced_custom_object(
                DGD_GROUP, DGD_VERSION, self.k8s_namespace, DGD_PLURAL, self.dgd_name
            ),
        )
        if not isinstance(dgd, dict):
            raise ConnectorError(
                f"DGD {self.dgd_name} answer is not an object", connector=_CONNECTOR
            )
        return dgd

    # ----------------------------------------------------------------- reading
    def _service_names(self, dgd: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """Prefill and decode services; required ones raise, optional ones may be None."""
        need_prefill, need_decode = _components(self.mode)
        names: list[str | None] = []
        for kind, needed in (("prefill", need_prefill), ("decode", need_decode)):
            try:
                names.append(resolve_service(dgd, kind, self.backend))
            except SubComponentNotFoundError:
                if needed:
                    raise
                names.append(None)
        return names[0], names[1]

    async def worker_counts(self) -> tuple[int, int, bool]:
        """Running prefill and decode workers, and whether both are stable."""
        dgd = await self.get_deployment()
        prefill, decode = self._service_names(dgd)
        counts = [
            worker_count(dgd, name) if name is not None else (0, True)
            for name in (prefill, decode)
        ]
        return counts[0][0], counts[1][0], counts[0][1] and counts[1][1]

    async def current(self) -> ReplicaState:
        """Running prefill and decode workers (from the DGD status)."""
        prefill, decode, _ = await self.worker_counts()
        return ReplicaState(prefill=prefill, decode=decode)

    async def validate_deployment(self) -> None:
        """Check the services the mode needs and the model name.

        Raises:
            DeploymentValidationError: Listing every problem found.
        """
        dgd = await self.get_deployment()
        need_prefill, need_decode = _components(self.mode)
        errors: list[str] = []
        services: list[str] = []
        for kind, needed in (("prefill", need_prefill), ("decode", need_decode)):
            if not needed:
                continue
            try:
                services.append(resolve_service(dgd, kind, self.backend))
            except DeploymentValidationError as exc:
                errors.append(str(exc))
        if services:
            try:
                model_name_of(dgd, services, self.model_name)
            except DeploymentValidationError as exc:
                errors.append(str(exc))
        if errors:
            raise DeploymentValidationError("; ".join(errors), connector=_CONNECTOR)

    async def get_model_name(self) -> str:
        """The model the worker services serve, lower-cased."""
        dgd = await self.get_deployment()
        prefill, decode = self._service_names(dgd)
        services = [s for s in (prefill, decode) if s is not None]
        return model_name_of(dgd, services, self.model_name)

    async def gpus_per_engine(self) -> tuple[int | None, int | None]:
        """GPUs of one prefill and one decode engine, ``None`` where it cannot be read.

        A service that the mode does not plan, or whose resources name no GPU count,
        reads ``None``; the caller falls back to the flags (spec §11.10).
        """
        dgd = await self.get_deployment()
        out: list[int | None] = []
        for kind in ("prefill", "decode"):
            try:
                name = resolve_service(dgd, kind, self.backend)
                out.append(engine_gpus(service_spec(dgd, name)))
            except (DeploymentValidationError, ValueError) as exc:
                logger.info("GPUs per %s engine not read from the DGD: %s", kind, exc)
                out.append(None)
        return out[0], out[1]

    async def get_frontend_metrics_url(self) -> str:
        """The frontend's ``/metrics`` URL inside the cluster."""
        return frontend_metrics_url(await self.get_deployment(), self.dgd_name)

    async def is_ready(self) -> bool:
        """Whether the DGD has the condition ``Ready=True``."""
        return is_ready(await self.get_deployment())

    async def wait_for_deployment_ready(self) -> None:
        """Sleep ``check_interval_s`` before each check, until Ready or ``max_wait_s``.

        Raises:
            ScalingTimeoutError: Not ready in time.
        """
        attempts = max(1, int(self.max_wait_s // self.check_interval_s))
        for _ in range(attempts):
            await self.clock.sleep(self.check_interval_s)
            try:
                if await self.is_ready():
                    return
            except ConnectorError as exc:
                logger.warning("readiness check failed: %s", exc)
        raise ScalingTimeoutError(
            f"DGD {self.dgd_name} not Ready after {self.max_wait_s:.0f} s",
            connector=_CONNECTOR,
        )

    # ----------------------------------------------------------------- scaling
    async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
        """Set the replicas of the prefill and decode services.

        A DGD that is not Ready is left alone (logged). A service already at its target
        is not patched.

        Raises:
            ConnectorError: The API server kept failing.
            DeploymentValidationError: A planned service cannot be found.
        """
        dgd = await self.get_deployment()
        if not is_ready(dgd):
            logger.warning(
                "DGD %s is not Ready; ignoring this scaling (%s)", self.dgd_name, plan
            )
            return
        targets = [
            (kind, target)
            for kind, target in (("prefill", plan.prefill), ("decode", plan.decode))
            if target is not None
        ]
        for kind, target in targets:
            service = resolve_service(dgd, kind, self.backend)
            current = service_spec(dgd, service).get("replicas")
            if current is not None and int(current) == target:
                logger.info("%s (%s) already at %d replicas", service, kind, target)
                continue
            await self._set_replicas(service, target)
        if blocking:
            await self.wait_for_deployment_ready()

    async def _spec_replicas(self, service: str) -> int | None:
        dgd = await self.get_deployment()
        value = service_spec(dgd, service).get("replicas")
        return None if value is None else int(value)

    async def _set_replicas(self, service: str, target: int) -> None:
        what = f"scale {service} to {target}"
        for attempt in range(self.retries + 1):
            try:
                await asyncio.to_thread(self._patch, service, target)
            except Exception as exc:
                if not _retryable(exc) or attempt == self.retries:
                    raise self._error(what, exc) from exc
                delay = self.backoff_s * 2**attempt
                logger.warning(
                    "%s failed (%s); retrying in %.2f s", what, self._why(exc), delay
                )
                await asyncio.sleep(delay)
                # The failed attempt may have landed: read back before sending again.
                try:
                    if await self._spec_replicas(service) == target:
                        logger.info("%s landed despite the error", what)
                        return
                except ConnectorError as read_exc:
                    logger.warning("cannot read back %s: %s", service, read_exc)
                continue
            self.patches_total += 1
            logger.info("scaled %s to %d replicas", service, target)
            return

    def _patch(self, service: str, target: int) -> None:
        """One replica change: the scale subresource, or a DGD merge-patch (blocking)."""
        if self._adapters is not False:
            try:
                self.api.patch_namespaced_custom_object_scale(
                    DGD_GROUP,
                    DGD_VERSION,
                    self.k8s_namespace,
                    SCALING_ADAPTER_PLURAL,
                    scaling_adapter_name(self.dgd_name, service),
                    {"spec": {"replicas": target}},
                    _content_type=_MERGE_PATCH,
                )
            except Exception as exc:
                if not (_is_api_error(exc) and _status_of(exc) == 404):
                    raise
                logger.info(
                    "no DynamoGraphDeploymentScalingAdapter for %s (404); "
                    "patching the DGD instead",
                    service,
                )
                self._adapters = False
            else:
                self._adapters = True
                return
        self.api.patch_namespaced_custom_object(
            DGD_GROUP,
            DGD_VERSION,
            self.k8s_namespace,
            DGD_PLURAL,
            self.dgd_name,
            {"spec": {"services": {service: {"replicas": target}}}},
            _content_type=_MERGE_PATCH,
        )

    async def aclose(self) -> None:
        """Close the API client's connections."""
        client = getattr(self.api, "api_client", None)
        close = getattr(client, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
