"""Reading a DynamoGraphDeployment (spec §11.11, pure cases)."""

from __future__ import annotations

from typing import Any

import pytest

from dynamo_planner.connectors._dgd import (
    DeploymentModelNameMismatchError,
    DuplicateSubComponentError,
    SubComponentNotFoundError,
    UserProvidedModelNameMismatchError,
    engine_gpus,
    frontend_metrics_url,
    is_ready,
    model_name_from_args,
    model_name_of,
    resolve_service,
    scaling_adapter_name,
    worker_count,
)
from dynamo_planner.exceptions import DeploymentValidationError


def _dgd(
    services: dict[str, Any], status: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"spec": {"services": services}, "status": status or {}}


def _args(args: Any) -> dict[str, Any]:
    return {"extraPodSpec": {"mainContainer": {"args": args}}}


class TestResolveService:
    def test_by_sub_component_type(self) -> None:
        """Services typed prefill and decode resolve to their names."""
        dgd = _dgd(
            {"A": {"subComponentType": "prefill"}, "B": {"subComponentType": "decode"}}
        )
        assert resolve_service(dgd, "prefill", "vllm") == "A"
        assert resolve_service(dgd, "decode", "vllm") == "B"

    def test_duplicate(self) -> None:
        """Two prefill services are an error."""
        dgd = _dgd(
            {"A": {"subComponentType": "prefill"}, "B": {"subComponentType": "prefill"}}
        )
        with pytest.raises(DuplicateSubComponentError, match="A"):
            resolve_service(dgd, "prefill", "vllm")

    def test_legacy_name_with_empty_subtype(self) -> None:
        """The legacy VllmPrefillWorker resolves when its subComponentType is empty."""
        dgd = _dgd({"VllmPrefillWorker": {}, "Frontend": {}})
        assert resolve_service(dgd, "prefill", "vllm") == "VllmPrefillWorker"

    def test_legacy_name_with_other_subtype(self) -> None:
        """A legacy-named service with another subComponentType is not used."""
        dgd = _dgd({"VllmPrefillWorker": {"subComponentType": "other"}})
        with pytest.raises(SubComponentNotFoundError):
            resolve_service(dgd, "prefill", "vllm")

    @pytest.mark.parametrize(
        ("backend", "decode"),
        [("sglang", "decode"), ("trtllm", "TRTLLMDecodeWorker"), ("mocker", "decode")],
    )
    def test_legacy_names_per_backend(self, backend: str, decode: str) -> None:
        """Each backend has its legacy decode name."""
        assert resolve_service(_dgd({decode: {}}), "decode", backend) == decode


class TestModelName:
    def test_served_model_name_wins(self) -> None:
        """--served-model-name takes precedence over --model."""
        assert model_name_from_args("--model X --served-model-name Y") == "Y"

    def test_list_and_equals_forms(self) -> None:
        """Lists are shell-split item by item; --flag=value counts."""
        assert model_name_from_args(
            ["python -m dynamo.vllm", "--model=Meta/Llama"]
        ) == ("Meta/Llama")
        assert model_name_from_args(["--model-name", "mock", "--model", "m"]) == "mock"
        assert model_name_from_args(None) is None

    def test_prefill_decode_mismatch(self) -> None:
        """Prefill serving a and decode serving b is an error."""
        dgd = _dgd({"P": _args("--model a"), "D": _args("--model b")})
        with pytest.raises(DeploymentModelNameMismatchError):
            model_name_of(dgd, ["P", "D"])

    def test_lower_cased_and_checked_against_user(self) -> None:
        """The name is lower-cased and must equal a configured one."""
        dgd = _dgd({"P": _args("--model Meta/Llama"), "D": _args("--model Meta/Llama")})
        assert model_name_of(dgd, ["P", "D"]) == "meta/llama"
        assert model_name_of(dgd, ["P", "D"], "META/LLAMA") == "meta/llama"
        with pytest.raises(UserProvidedModelNameMismatchError):
            model_name_of(dgd, ["P", "D"], "other")

    def test_user_name_when_unparsable(self) -> None:
        """A configured name is used when the args name no model."""
        dgd = _dgd({"P": {}, "D": {}})
        assert model_name_of(dgd, ["P", "D"], "Mine") == "mine"
        with pytest.raises(DeploymentValidationError):
            model_name_of(dgd, ["P", "D"])


class TestGpus:
    def test_limits(self) -> None:
        """resources.limits.gpu "2" reads 2."""
        assert engine_gpus({"resources": {"limits": {"gpu": "2"}}}) == 2

    def test_requests_only(self) -> None:
        """Only resources.requests.gpu "4" reads 4."""
        assert engine_gpus({"resources": {"requests": {"gpu": "4"}}}) == 4

    @pytest.mark.parametrize("spec", [{}, {"resources": {"limits": {"gpu": "two"}}}])
    def test_missing_or_invalid(self, spec: dict[str, Any]) -> None:
        """No GPU count, or a non-integer one, is an error."""
        with pytest.raises(ValueError, match="gpu"):
            engine_gpus(spec)


class TestStatus:
    def test_available_replicas_and_stability(self) -> None:
        """availableReplicas 2 with spec 2 is (2, stable); with spec 3, (2, unstable)."""
        status = {
            "services": {
                "D": {"availableReplicas": 2, "readyReplicas": 3, "updatedReplicas": 2}
            }
        }
        assert worker_count(_dgd({"D": {"replicas": 2}}, status), "D") == (2, True)
        assert worker_count(_dgd({"D": {"replicas": 3}}, status), "D") == (2, False)

    def test_ready_replicas_fallback(self) -> None:
        """Without availableReplicas the count is readyReplicas, else 0."""
        status = {"services": {"D": {"readyReplicas": 3}}}
        assert worker_count(_dgd({"D": {}}, status), "D")[0] == 3
        assert worker_count(_dgd({"D": {}}), "D") == (0, False)

    def test_ready_condition(self) -> None:
        """Ready means a condition type Ready with status "True"."""
        ready = {"conditions": [{"type": "Ready", "status": "True"}]}
        assert is_ready(_dgd({}, ready))
        assert not is_ready(
            _dgd({}, {"conditions": [{"type": "Ready", "status": "False"}]})
        )
        assert not is_ready(_dgd({}))


class TestNames:
    def test_frontend_url(self) -> None:
        """Frontend key Frontend in DGD my-dgd gives http://my-dgd-frontend:8000/metrics."""
        dgd = _dgd({"Frontend": {"componentType": "frontend"}})
        assert (
            frontend_metrics_url(dgd, "my-dgd") == "http://my-dgd-frontend:8000/metrics"
        )
        with pytest.raises(DeploymentValidationError, match="frontend"):
            frontend_metrics_url(_dgd({}), "my-dgd")

    def test_scaling_adapter_name(self) -> None:
        """The adapter of VllmDecodeWorker in my-dgd is my-dgd-vllmdecodeworker."""
        assert (
            scaling_adapter_name("my-dgd", "VllmDecodeWorker")
            == "my-dgd-vllmdecodeworker"
        )
