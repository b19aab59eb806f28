"""The ``fundusrt`` command.

Subcommands are plug-ins declared under the ``fundusrt.commands`` entry-point group in
``pyproject.toml``: each names a function that adds its command to the parser. Registering
imports only the standard library; each command imports its heavy code (torch, OpenCV, the
engines) when it runs, so ``fundusrt --help`` answers at once. This file knows none of them, so
the runtime never imports training code by itself, and a base install without the ``train``
extra still lists every command and, when one is run, says what it needs.
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


# Optional modules -> the extra that installs them.
EXTRAS = {"openvino": "openvino", "ray": "ray", "tensorrt": "trt", "cuda": "trt"}


def _needs(error: ImportError) -> str:
    module = (error.name or "").split(".")[0]
    return f"needs {module or error}: pip install 'fundusrt[{EXTRAS.get(module, 'train')}]'"


def _register_unavailable(subparsers, name: str, error: ImportError) -> None:
    """List the command anyway; running it says what to install."""
    reason = _needs(error)
    p = subparsers.add_parser(name, help=f"(unavailable: {reason})", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)

    def unavailable(args) -> int:
        sys.exit(f"fundusrt {name}: {reason}")

    p.set_defaults(func=unavailable)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as e:  # an extra this command needs is not installed
        if e.name is None or e.name.split(".")[0] == "fundusrt":
            raise
        sys.exit(f"fundusrt {args.command}: {_needs(e)}")


if __name__ == "__main__":
    sys.exit(main())
