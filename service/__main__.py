"""``python -m service``: serve ``STLSNN_MODEL_REPOSITORY`` on ``STLSNN_HOST:STLSNN_PORT`` with uvicorn.

Every setting is also a command-line flag (``--max-batch-size 8`` for ``STLSNN_MAX_BATCH_SIZE``),
generated from ``Settings`` by pydantic-settings so the class stays the one source of truth; a
flag overrides its environment variable. ``--help`` lists them all and starts nothing.

A missing repository is first filled with the bundled demo model (``python -m export
models/checkpoints --out REPO``) when PyTorch is importable; otherwise the server says what to do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from pydantic_settings import CliSettingsSource

from service.app import create_app
from service.metrics import MULTIPROCESS_DIR
from service.request_logging import configure_logging
from service.settings import Settings
from service.workers import settings_environment, worker_count

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_CHECKPOINTS = PROJECT_ROOT / "models" / "checkpoints"

log = logging.getLogger("stlsnn.service")
STREAM_MESSAGE_QUEUE = 4


def ensure_repository(repository: Path) -> str | None:
    """Export the demo into a missing repository; returns why that was impossible, or None."""
    if repository.exists():
        return None
    if importlib.util.find_spec("torch") is None:
        return (
            f"model repository {repository} does not exist and PyTorch is not installed to export the demo: "
            "run `python -m export models/checkpoints --out REPO` where PyTorch is, or set STLSNN_MODEL_REPOSITORY"
        )
    if not DEMO_CHECKPOINTS.is_dir():
        return f"model repository {repository} does not exist and no bundled checkpoints were found to export"
    log.info("exporting the bundled demo", extra={"repository": str(repository)})
    command = [sys.executable, "-m", "export", str(DEMO_CHECKPOINTS), "--out", str(repository.resolve())]
    if subprocess.run(command, cwd=PROJECT_ROOT, check=False).returncode != 0:
        return f"exporting the demo model into {repository} failed (see the messages above)"
    return None


def parse_settings(argv: list[str] | None = None, prog: str = "python -m service") -> Settings:
    """``Settings`` from the environment with ``argv``'s flags on top; argparse exits 0 on ``--help``
    and 2 (with usage) on an unknown flag or an invalid value."""
    flags = CliSettingsSource(
        Settings, cli_prog_name=prog, cli_kebab_case=True, cli_implicit_flags=True, cli_show_env_vars=True
    )
    parsed = flags(args=sys.argv[1:] if argv is None else argv)
    try:
        return Settings(_cli_settings_source=parsed)
    except ValidationError as error:
        problems = "; ".join(f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in error.errors())
        flags.root_parser.error(problems)
        raise  # error() exits; this line only satisfies the type checker


def main(argv: list[str] | None = None, prog: str = "python -m service") -> int:
    settings = parse_settings(argv, prog)
    configure_logging(settings.log_level)
    problem = ensure_repository(Path(settings.model_repository))
    if problem:
        print(f"stlsnn-serve: {problem}", file=sys.stderr)
        return 2
    # uvicorn drains in-flight requests on SIGTERM/SIGINT, then re-raises the signal for the
    # previous handler: make that one a no-op so a drained shutdown exits 0, as Docker expects.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_drain)
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": settings.graceful_shutdown_s,
        # a stream's unread messages are part of its memory bound: few, and each capped (1009 beyond)
        "ws_max_size": settings.stream_max_message_bytes,
        "ws_max_queue": STREAM_MESSAGE_QUEUE,
    }
    workers = worker_count(settings)
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return 0
    # uvicorn's supervisor forwards SIGTERM to every worker, each drains its requests and batchers
    os.environ.update(settings_environment(settings))
    with _metrics_directory():
        log.info("starting workers", extra={"workers": workers})
        uvicorn.run("service.workers:create_worker_app", factory=True, workers=workers, **options)
    return 0


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    """A fresh ``PROMETHEUS_MULTIPROC_DIR`` for the workers' metric files (a given one is emptied first)."""
    given = os.environ.get(MULTIPROCESS_DIR)
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="stlsnn-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_DIR] = str(folder)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)


def _after_drain(signum: int, frame: object) -> None:
    log.info("shut down after draining", extra={"signal": signal.Signals(signum).name})


if __name__ == "__main__":
    sys.exit(main())
