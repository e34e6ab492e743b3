"""``stlsnn``: the console script's parser and dispatch (see ``service.cli`` for the policy).

Only the chosen subcommand's module is imported (``stlsnn --help`` loads none of them, so it
answers at once). Delegated subcommands pass every argument after their name to the module's
own ``main``, so their options and help stay defined in one place. Where a delegated module
cannot be imported (the serve image has no PyTorch and no ``models``), ``--help`` still answers,
exit 0, saying what the subcommand needs; running it exits 1 with the same message.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    """A subcommand and the module that implements it.

    A delegated module has its own command line (``module.main(argv)``); a local one provides
    ``add_arguments(parser)`` and ``run(args) -> int``. ``needs`` names what a delegated module
    imports that an image may lack.
    """

    module: str
    summary: str
    delegated: bool = False
    needs: str = ""


SUBCOMMANDS = {
    "serve": Subcommand("service.__main__", "run the HTTP server (every STLSNN_* setting is also a flag)", True),
    "export": Subcommand("export.__main__", "export checkpoints into a model repository", True, "PyTorch"),
    "train": Subcommand("models.train", "train an STL-SNN", True, "PyTorch"),
    "evaluate": Subcommand("models.evaluate", "evaluate a checkpoint on a test split", True, "PyTorch"),
    "classify": Subcommand("service.cli.classify", "classify files and folders of recordings through a server"),
    "timeline": Subcommand("service.cli.timeline", "label a long recording window by window through a server"),
    "inspect": Subcommand("service.cli.inspect_file", "describe one recording and optionally draw it as a PNG"),
}
HELP = ("-h", "--help")


def root_parser() -> argparse.ArgumentParser:
    """The parser of ``stlsnn`` itself: lists the subcommands, imports none of them."""
    root = argparse.ArgumentParser(prog="stlsnn", description="Train, export, serve and use STL-SNN models.")
    commands = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, subcommand in SUBCOMMANDS.items():
        commands.add_parser(name, help=subcommand.summary, add_help=False)
    return root


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        root_parser().parse_args(argv)  # prints help (exit 0) or usage and the error (exit 2)
        return 2
    name, rest = argv[0], argv[1:]
    if SUBCOMMANDS[name].delegated:
        return run_delegate(name, rest)
    module = importlib.import_module(SUBCOMMANDS[name].module)
    parser = argparse.ArgumentParser(prog=f"stlsnn {name}", description=SUBCOMMANDS[name].summary)
    module.add_arguments(parser)
    return module.run(parser.parse_args(rest))


def run_delegate(name: str, argv: list[str]) -> int:
    """Import the subcommand's module now and run its ``main``; its SystemExit (help, usage) passes through."""
    delegate = SUBCOMMANDS[name]
    prog = f"stlsnn {name}"
    try:
        module = importlib.import_module(delegate.module)
    except ImportError as error:
        if not delegate.needs:
            raise
        missing = error.name or delegate.module
        message = (
            f"{prog} needs {delegate.needs} and the training code ({missing} is not importable here; "
            "the serve image has neither): run it from a checkout with requirements/export.txt installed"
        )
        if any(flag in argv for flag in HELP):
            print(f"usage: {prog} [options]\n\n{delegate.summary}.\n\n{message}; its options are listed once it is.")
            return 0
        print(message, file=sys.stderr)
        return 1
    if name == "serve":
        return module.main(argv, prog=prog)
    return module.main(argv) or 0
