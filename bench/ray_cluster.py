"""A real Ray cluster on this machine with the service deployed from ``deploy/ray/serve.yaml``.

Used by ``bench/ray_load.py`` and ``tests/test_ray_serve.py``. The cluster is a head node plus
simulated worker nodes (``ray.cluster_utils.Cluster``: one raylet per node, each with its own CPUs),
every address on the loopback interface. The application is deployed the way ``serve run
deploy/ray/serve.yaml`` does it (the config validated by Serve's schema, then handed to the controller),
with only the proxy's port, the model repository and the replica count changed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVE_CONFIG = ROOT / "deploy" / "ray" / "serve.yaml"
APP_NAME = "stlsnn"
REPLICA_PREFIX = "SERVE_REPLICA::"

# Ray reads this once, when it is imported: off, the nodes and the driver use the loopback address
# instead of the machine's outward one, so no cluster traffic leaves 127.0.0.1. Import this module first.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

# Workers start from the raylet's environment: they import the project from this checkout. A proxy sends
# a request to a replica on its own node while that one has room; here every node is this machine and one
# proxy takes all the traffic, so that preference is off and the proxy spreads over every replica, as a
# load balancer in front of every node's proxy (proxy_location: EveryNode) does on a real cluster.
RAY_ENV = {
    "PYTHONPATH": str(ROOT),
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "service.ray_app:proxy_middlewares",
}


def serve_config(repository: Path, port: int, replicas: int | None = None, path: Path = SERVE_CONFIG) -> dict:
    """``deploy/ray/serve.yaml`` with the proxy on 127.0.0.1:``port``, ``repository`` served, ``replicas`` set."""
    config = yaml.safe_load(path.read_text())
    config["http_options"] |= {"host": "127.0.0.1", "port": port}
    app = config["applications"][0]
    app["runtime_env"]["env_vars"]["STLSNN_MODEL_REPOSITORY"] = str(repository)  # what a node's env would give
    if replicas is not None:
        app["deployments"][0]["num_replicas"] = replicas
    return config


@dataclass
class LocalRayCluster:
    """A head node and ``nodes - 1`` simulated worker nodes, ``cpus_per_node`` CPUs each."""

    nodes: int = 2
    cpus_per_node: float = 1

    def start(self) -> LocalRayCluster:
        import ray
        from ray.cluster_utils import Cluster

        self._saved_env = {key: os.environ.get(key) for key in RAY_ENV}
        os.environ.update(RAY_ENV)
        node_args = {"num_cpus": self.cpus_per_node, "object_store_memory": 128 << 20}
        self.cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
        for _ in range(self.nodes - 1):
            self.cluster.add_node(**node_args)
        ray.init(address=self.cluster.address, namespace="serve", log_to_driver=False)
        if ray.util.get_node_ip_address() != "127.0.0.1":
            self.stop()
            raise RuntimeError("Ray was imported before bench.ray_cluster: the cluster is not on the loopback address")
        return self

    def deploy(self, config: dict, timeout_s: float = 240) -> None:
        """Start Serve's proxy and controller as the config says, deploy its applications, wait until RUNNING."""
        from ray.serve._private import api as serve_api
        from ray.serve.config import gRPCOptions
        from ray.serve.schema import ServeDeploySchema

        schema = ServeDeploySchema.model_validate(config)
        client = serve_api.serve_start(
            http_options=schema.http_options.model_dump(),
            proxy_location=schema.proxy_location,
            grpc_options=gRPCOptions(**schema.grpc_options.model_dump()),
        )
        client.deploy_apps(schema, _blocking=False)
        self.wait_running(timeout_s)

    def wait_running(self, timeout_s: float, replicas: int | None = None) -> None:
        """Until every application is RUNNING with ``replicas`` replicas running in all (any count when None)."""
        from ray import serve

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            apps = serve.status().applications.values()
            failed = [app.message for app in apps if app.status == "DEPLOY_FAILED"]
            if failed:
                raise RuntimeError(f"deploy failed: {failed}")
            if apps and all(app.status == "RUNNING" for app in apps):
                running = sum(d.replica_states.get("RUNNING", 0) for app in apps for d in app.deployments.values())
                if replicas is None or running == replicas:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"applications not running after {timeout_s} s: {serve.status()}")

    def replica_ids(self) -> set[str]:
        """The ids of the live replica actors (the value of their ``X-Serve-Replica`` header)."""
        import ray

        return {
            actor["name"].rsplit("#", 1)[1]
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor["name"].startswith(f"{REPLICA_PREFIX}{APP_NAME}#")
        }

    def replica_actor(self, replica_id: str):
        import ray

        return ray.get_actor(f"{REPLICA_PREFIX}{APP_NAME}#{APP_NAME}#{replica_id}", namespace="serve")

    def stop(self) -> None:
        import ray
        from ray import serve

        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            self.cluster.shutdown()
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
