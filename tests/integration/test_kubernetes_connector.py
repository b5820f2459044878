"""The Kubernetes connector with the official client against a DGD API server (§6.2, §11.11)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dynamo_planner.connectors.kubernetes import KubernetesConnector
from dynamo_planner.exceptions import ConnectorError, DeploymentValidationError
from dynamo_planner.testing.fake_kube import FakeKubeServer, Fault
from dynamo_planner.testing.fakes import ManualClock
from dynamo_planner.values import ReplicaPlan, ReplicaState

NS = "prod"
DGD = "my-dgd"
DGD_PATH = f"/apis/nvidia.com/v1alpha1/namespaces/{NS}/dynamographdeployments/{DGD}"


def _dgd(*, ready: bool = True, prefill: int = 1, decode: int = 2) -> dict[str, Any]:
    args = "python3 -m dynamo.vllm --model Meta/Llama-3.1-8B"
    return {
        "apiVersion": "nvidia.com/v1alpha1",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": DGD, "namespace": NS},
        "spec": {
            "services": {
                "Frontend": {"componentType": "frontend", "replicas": 1},
                "VllmPrefillWorker": {
                    "subComponentType": "prefill",
                    "replicas": prefill,
                    "resources": {"limits": {"gpu": "2"}},
                    "extraPodSpec": {"mainContainer": {"args": [args]}},
                },
                "VllmDecodeWorker": {
                    "subComponentType": "decode",
                    "replicas": decode,
                    "resources": {"requests": {"gpu": "4"}},
                    "extraPodSpec": {"mainContainer": {"args": [args]}},
                },
            }
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "services": {
                "VllmPrefillWorker": {
                    "availableReplicas": prefill,
                    "updatedReplicas": prefill,
                },
                "VllmDecodeWorker": {
                    "readyReplicas": decode,
                    "updatedReplicas": decode,
                },
            },
        },
    }


def _api(url: str) -> Any:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    return client.CustomObjectsApi(client.ApiClient(configuration))


@pytest.fixture(name="server")
def _server(request: pytest.FixtureRequest) -> Iterator[FakeKubeServer]:
    adapters = getattr(request, "param", True)
    server = FakeKubeServer(scale_adapters=adapters).start()
    server.put_dgd(NS, _dgd())
    yield server
    server.close()


@pytest.fixture(name="connector")
def _connector(server: FakeKubeServer) -> KubernetesConnector:
    return KubernetesConnector(
        api=_api(server.url),
        dgd_name=DGD,
        k8s_namespace=NS,
        backend="vllm",
        retries=3,
        backoff_s=0.01,
        check_interval_s=10,
        max_wait_s=30,
        clock=ManualClock(),
    )


def _patches(server: FakeKubeServer) -> list[str]:
    return [r.path for r in server.requests if r.method == "PATCH"]


class TestReading:
    async def test_counts_model_gpus_and_frontend(
        self, connector: KubernetesConnector
    ) -> None:
        """Counts, model name, GPUs per engine and the frontend URL come from the DGD."""
        assert await connector.current() == ReplicaState(prefill=1, decode=2)
        assert await connector.worker_counts() == (1, 2, True)
        assert await connector.get_model_name() == "meta/llama-3.1-8b"
        assert await connector.gpus_per_engine() == (2, 4)
        assert await connector.get_frontend_metrics_url() == (
            "http://my-dgd-frontend:8000/metrics"
        )
        await connector.validate_deployment()
        await connector.aclose()

    async def test_validation_collects_errors(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """A DGD without a decode service and with a model mismatch reports both."""
        dgd = _dgd()
        del dgd["spec"]["services"]["VllmDecodeWorker"]
        dgd["spec"]["services"]["Other"] = {
            "subComponentType": "decode",
            "extraPodSpec": {"mainContainer": {"args": "--model other"}},
        }
        dgd["spec"]["services"]["Second"] = {"subComponentType": "decode"}
        server.put_dgd(NS, dgd)
        with pytest.raises(DeploymentValidationError, match="Other"):
            await connector.validate_deployment()

    async def test_missing_dgd(self, server: FakeKubeServer) -> None:
        """A DGD that does not exist raises a ConnectorError naming it."""
        connector = KubernetesConnector(
            api=_api(server.url),
            dgd_name="absent",
            k8s_namespace=NS,
            clock=ManualClock(),
        )
        with pytest.raises(ConnectorError, match=r"absent.*404"):
            await connector.current()


class TestScaling:
    async def test_scale_subresource(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """A change patches the scaling adapter's scale subresource with merge-patch."""
        await connector.apply(ReplicaPlan(prefill=3, decode=None))
        patch = next(r for r in server.requests if r.method == "PATCH")
        assert patch.path.endswith(
            "/dynamographdeploymentscalingadapters/my-dgd-vllmprefillworker/scale"
        )
        assert patch.content_type == "application/merge-patch+json"
        assert patch.body == {"spec": {"replicas": 3}}
        assert server.changes == [("VllmPrefillWorker", 3)]

    @pytest.mark.parametrize("server", [False], indirect=True)
    async def test_merge_patch_fallback_without_adapters(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """An operator without scaling adapters (404) gets a merge-patch of the DGD."""
        await connector.apply(ReplicaPlan(prefill=2, decode=5))
        dgd_patches = [
            r for r in server.requests if r.method == "PATCH" and r.path == DGD_PATH
        ]
        assert [r.body for r in dgd_patches] == [
            {"spec": {"services": {"VllmPrefillWorker": {"replicas": 2}}}},
            {"spec": {"services": {"VllmDecodeWorker": {"replicas": 5}}}},
        ]
        assert (
            server.dgd(NS, DGD)["spec"]["services"]["VllmDecodeWorker"]["replicas"] == 5
        )
        # The 404 is learned: the second service goes straight to the merge-patch.
        assert len(_patches(server)) == 3

    async def test_not_ready_is_a_no_op(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """A DGD that is not Ready is not scaled."""
        server.put_dgd(NS, _dgd(ready=False))
        await connector.apply(ReplicaPlan(prefill=4, decode=4))
        assert _patches(server) == []

    async def test_target_equal_to_spec_is_not_patched(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """A service already at its target is not patched."""
        await connector.apply(ReplicaPlan(prefill=1, decode=2))
        assert _patches(server) == []

    async def test_blocking_waits_for_ready(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """A blocking apply sleeps before each readiness check and returns when Ready."""
        await connector.apply(ReplicaPlan(prefill=2, decode=None), blocking=True)
        assert isinstance(connector.clock, ManualClock)
        assert connector.clock.sleeps == [10]


class TestFaults:
    @pytest.mark.parametrize("status", [409, 500])
    async def test_transient_errors_are_retried(
        self, server: FakeKubeServer, connector: KubernetesConnector, status: int
    ) -> None:
        """409 and 500 answers are retried; the change is made once."""
        server.inject(
            Fault("PATCH", "/scale", status), Fault("PATCH", "/scale", status)
        )
        await connector.apply(ReplicaPlan(prefill=3, decode=None))
        assert server.changes == [("VllmPrefillWorker", 3)]
        assert len(_patches(server)) == 3
        assert connector.patches_total == 1

    async def test_lost_answer_is_not_sent_twice(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """A change applied but answered 500 is read back, not patched again."""
        server.inject(Fault("PATCH", "/scale", 500, apply_anyway=True))
        await connector.apply(ReplicaPlan(prefill=3, decode=None))
        assert server.changes == [("VllmPrefillWorker", 3)]
        assert len(_patches(server)) == 1

    async def test_get_retried(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """A 500 on reading the DGD is retried."""
        server.inject(Fault("GET", DGD_PATH, 500))
        assert await connector.current() == ReplicaState(prefill=1, decode=2)

    async def test_persistent_errors_raise(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """Errors that outlast the retries raise a ConnectorError; nothing changes."""
        server.inject(*[Fault("PATCH", "/scale", 500) for _ in range(4)])
        with pytest.raises(ConnectorError, match="HTTP 500"):
            await connector.apply(ReplicaPlan(prefill=3, decode=None))
        assert server.changes == []

    async def test_client_error_not_retried(
        self, server: FakeKubeServer, connector: KubernetesConnector
    ) -> None:
        """A 403 is not retried."""
        server.inject(Fault("PATCH", "/scale", 403))
        with pytest.raises(ConnectorError, match="403"):
            await connector.apply(ReplicaPlan(prefill=3, decode=None))
        assert len(_patches(server)) == 1


class TestFromConfig:
    def test_needs_dgd_name(self) -> None:
        """Without DYN_PARENT_DGD_K8S_NAME the connector cannot be built."""
        from dynamo_planner.config import PlannerConfig

        with pytest.raises(DeploymentValidationError, match="DYN_PARENT_DGD_K8S_NAME"):
            KubernetesConnector.from_config(PlannerConfig(), environ={})

    def test_reads_environment(self, server: FakeKubeServer) -> None:
        """The DGD name comes from DYN_PARENT_DGD_K8S_NAME."""
        from dynamo_planner.config import PlannerConfig

        connector = KubernetesConnector.from_config(
            PlannerConfig(backend="sglang"),
            environ={"DYN_PARENT_DGD_K8S_NAME": "x"},
            api=_api(server.url),
            k8s_namespace=NS,
        )
        assert (connector.dgd_name, connector.backend) == ("x", "sglang")
