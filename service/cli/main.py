"""``stlsnn``: the console script's parser and dispatch (see ``service.cli`` for the policy).

Delegated subcommands pass every argument after their name to the module's own ``main``, so
their options and help stay defined in one place. Where a delegated module cannot be imported
because PyTorch is missing (the serve image), ``--help`` still answers, exit 0, saying what the
subcommand needs; running it exits 1 with the same message.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

from service.cli import classify, inspect_file, timeline


@dataclass(frozen=True)
class Delegate:
    """A subcommand whose module has its own command line: ``module.main(argv)``."""

    module: str
    summary: str
    needs: str = ""


DELEGATES = {
    "serve": Delegate("service.__main__", "run the HTTP server (every STLSNN_* setting is also a flag)"),
    "export": Delegate("export.__main__", "export checkpoints into a model repository", "PyTorch"),
    "train": Delegate("models.train", "train an STL-SNN", "PyTorch"),
    "evaluate": Delegate("models.evaluate", "evaluate a checkpoint on a test split", "PyTorch"),
}
LOCAL: dict[str, tuple[str, Callable, Callable]] = {
    "classify": ("classify files and folders of recordings through a server", classify.add_arguments, classify.run),
    "timeline": ("label a long recording window by window through a server", timeline.add_arguments, timeline.run),
    "inspect": ("describe one recording and optionally draw it as a PNG", inspect_file.add_arguments, inspect_file.run),
}
HELP = ("-h", "--help")


def parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The root parser and each local subcommand's own (which reports that subcommand's usage on errors)."""
    root = argparse.ArgumentParser(prog="stlsnn", description="Train, export, serve and use STL-SNN models.")
    commands = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, delegate in DELEGATES.items():
        commands.add_parser(name, help=delegate.summary, add_help=False)
    local = {}
    for name, (summary, add_arguments, _) in LOCAL.items():
        local[name] = commands.add_parser(name, help=summary, description=summary)
        add_arguments(local[name])
    return root, local


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATES:
        return run_delegate(argv[0], argv[1:])
    root, local = parsers()
    args, unknown = root.parse_known_args(argv)
    if unknown:
        local[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return LOCAL[args.command][2](args)


def run_delegate(name: str, argv: list[str]) -> int:
    """Import the subcommand's module now and run its ``main``; its SystemExit (help, usage) passes through."""
    delegate = DELEGATES[name]
    prog = f"stlsnn {name}"
    try:
        module = importlib.import_module(delegate.module)
    except ImportError as error:
        if not delegate.needs or (error.name or "").split(".")[0] not in ("torch", "safetensors", "onnx"):
            raise
        message = f"{prog} needs {delegate.needs}, which is not installed here (pip install -r requirements/export.txt)"
        if any(flag in argv for flag in HELP):
            print(f"usage: {prog} [options]\n\n{delegate.summary}.\n\n{message}; its options are listed once it is.")
            return 0
        print(message, file=sys.stderr)
        return 1
    if name == "serve":
        return module.main(argv, prog=prog)
    return module.main(argv) or 0
