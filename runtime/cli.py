"""The ``fundusrt`` command.

Subcommands are plug-ins declared under the ``fundusrt.commands`` entry-point group in
``pyproject.toml``: each module that owns a command defines ``register_command(subparsers)``.
This file knows none of them, so the runtime never imports training code by itself, and a
base install without the ``train`` extra still lists every command and says what it needs.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fundusrt", description="Glaucoma screening of fundus photographs.")
    parser.add_argument("--version", action="version", version=f"fundusrt {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for entry in sorted(entry_points(group="fundusrt.commands"), key=lambda e: e.name):
        try:
            register = entry.load()
        except ImportError as e:
            _register_unavailable(subparsers, entry.name, e)
        else:
            register(subparsers)
    return parser


def _register_unavailable(subparsers, name: str, error: ImportError) -> None:
    """List the command anyway; running it says what to install."""
    reason = f"needs {error.name or error}: pip install 'fundusrt[train]'"
    p = subparsers.add_parser(name, help=f"(unavailable: {reason})", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)

    def unavailable(args) -> int:
        sys.exit(f"fundusrt {name}: {reason}")

    p.set_defaults(func=unavailable)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
