"""``deploy/``: the Ray Serve config and the Kubernetes manifests, checked without a cluster.

The core Kubernetes resources validate against the Kubernetes 1.37 OpenAPI schemas, strictly (unknown
fields rejected), with ``kubernetes-validate`` offline; the Serve config validates against Ray Serve's
own schema; the RayService (a KubeRay custom resource, for which no offline schema ships) is checked for
the fields the KubeRay operator requires, and its inline Serve config must equal ``deploy/ray/serve.yaml``.
The limits Serve enforces must match the service settings they mirror.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVE_CONFIG = ROOT / "deploy" / "ray" / "serve.yaml"
K8S_SERVE = ROOT / "deploy" / "k8s" / "serve.yaml"
RAYSERVICE = ROOT / "deploy" / "k8s" / "rayservice.yaml"
KUBERNETES_VERSION = "1.37.0"
SERVE_IMAGE_USER = 10001  # the Dockerfile's stlsnn user


def documents(path: Path) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(path.read_text()) if doc}


def serve_env() -> dict[str, str]:
    return yaml.safe_load(SERVE_CONFIG.read_text())["applications"][0]["runtime_env"]["env_vars"]


def test_core_resources_validate_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    resources = documents(K8S_SERVE)
    assert set(resources) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for resource in resources.values():
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_a_broken_resource_fails_the_schema_check():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = documents(K8S_SERVE)["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [8000]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_deployment_probes_asks_for_a_gpu_and_runs_locked_down():
    resources = documents(K8S_SERVE)
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]["image"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == SERVE_IMAGE_USER
    env = {item["name"]: item["value"] for item in container["env"]}
    assert pod["terminationGracePeriodSeconds"] > float(env["STLSNN_GRACEFUL_SHUTDOWN_S"])
    assert {m["mountPath"] for m in container["volumeMounts"]} == {env["STLSNN_MODEL_REPOSITORY"], "/tmp"}
    port = container["ports"][0]["name"]
    assert resources["Service"]["spec"]["ports"][0]["targetPort"] == port
    labels = resources["Deployment"]["spec"]["selector"]["matchLabels"]
    assert resources["Service"]["spec"]["selector"] == labels
    assert resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert (
        resources["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == resources["Deployment"]["metadata"]["name"]
    )


def test_the_serve_config_validates_against_ray_serves_schema():
    schema = pytest.importorskip("ray.serve.schema")
    config = schema.ServeDeploySchema.model_validate(yaml.safe_load(SERVE_CONFIG.read_text()))
    (app,) = config.applications
    assert app.import_path == "service.ray_app:build"
    assert app.deployments[0].num_replicas == 2


def test_serve_limits_match_the_service_settings_they_mirror():
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    env = serve_env()
    (deployment,) = config["applications"][0]["deployments"]
    assert deployment["max_ongoing_requests"] == int(env["STLSNN_MAX_QUEUE_SIZE"])
    assert deployment["graceful_shutdown_timeout_s"] == float(env["STLSNN_GRACEFUL_SHUTDOWN_S"])
    assert config["http_options"]["request_timeout_s"] == float(env["STLSNN_REQUEST_TIMEOUT_S"])
    assert int(env["STLSNN_MAX_QUEUE_SIZE"]) >= int(env["STLSNN_MAX_BATCH_SIZE"])


def test_the_rayservice_has_what_kuberay_requires_and_the_same_serve_config():
    service = documents(RAYSERVICE)["RayService"]
    assert service["apiVersion"] == "ray.io/v1"
    assert service["metadata"]["name"]
    spec = service["spec"]
    assert isinstance(spec["serveConfigV2"], str)
    assert yaml.safe_load(spec["serveConfigV2"]) == yaml.safe_load(SERVE_CONFIG.read_text())
    cluster = spec["rayClusterConfig"]
    ray_pin = next(
        line for line in (ROOT / "requirements" / "ray.txt").read_text().splitlines() if line.startswith("ray")
    )
    assert cluster["rayVersion"] == ray_pin.rpartition("==")[2]
    head = cluster["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    assert head["rayStartParams"]["num-cpus"] == "0"  # replicas only on the GPU workers
    head_ports = {port["containerPort"] for port in head["template"]["spec"]["containers"][0]["ports"]}
    assert {6379, 8265, 8000} <= head_ports
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["groupName"] and isinstance(workers["rayStartParams"], dict)
    assert workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    for group in (head, workers):
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())  # KubeRay wants strings
        (container,) = group["template"]["spec"]["containers"]
        assert container["image"] == "stlsnn-serve:ray"
        env = {item["name"]: item["value"] for item in container["env"]}
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert env["STLSNN_MODEL_REPOSITORY"] in mounts
        assert env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] == "service.ray_app:proxy_middlewares"
        assert group["template"]["spec"]["securityContext"]["runAsUser"] == SERVE_IMAGE_USER
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_pod_templates_inside_the_rayservice_validate_as_pod_specs():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    cluster = documents(RAYSERVICE)["RayService"]["spec"]["rayClusterConfig"]
    for group in (cluster["headGroupSpec"], *cluster["workerGroupSpecs"]):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": group["template"]["spec"]}
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_the_ray_image_adds_ray_to_the_serve_image_and_the_serve_image_has_none():
    from tests.test_deployment import copy_sources, stage_chain, stage_instructions

    for runtime in ({}, {"SERVE_RUNTIME": "runtime-cpu"}):
        assert stage_chain("ray", runtime)[-2:] == ["serve", "ray"]
        serve_steps = stage_instructions("serve", "RUN", runtime) + stage_instructions("serve", "COPY", runtime)
        assert not [step for step in serve_steps if "ray.txt" in step or "ray[" in step], "Ray in the serve image"
    assert (["requirements/ray.txt"], "requirements/") in copy_sources("ray")
