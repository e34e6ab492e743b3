"""``python -m service``: serve ``STLSNN_MODEL_REPOSITORY`` on ``STLSNN_HOST:STLSNN_PORT`` with uvicorn.

Every setting is also a command-line flag (``--max-batch-size 8`` for ``STLSNN_MAX_BATCH_SIZE``),
generated from ``Settings`` by pydantic-settings so the class stays the one source of truth; a
flag overrides its environment variable. ``--help`` lists them all and starts nothing.

A missing repository is first filled with the bundled demo model (``python -m export
models/checkpoints --out REPO``) when PyTorch is importable; otherwise the server says what to do.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import subprocess
import sys
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from pydantic_settings import CliSettingsSource

from service.app import create_app
from service.request_logging import configure_logging
from service.settings import Settings

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
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
        # a stream's unread messages are part of its memory bound: few, and each capped (1009 beyond)
        ws_max_size=settings.stream_max_message_bytes,
        ws_max_queue=STREAM_MESSAGE_QUEUE,
    )
    return 0


def _after_drain(signum: int, frame: object) -> None:
    log.info("shut down after draining", extra={"signal": signal.Signals(signum).name})


if __name__ == "__main__":
    sys.exit(main())
