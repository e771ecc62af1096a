"""The `statements` command (registered on the main CLI by referral_pipeline.cli.build_parser).

Same contract as referral_pipeline.cli_controls: `add_commands(sub, run)` registers the command on the main
CLI's subparsers; `run(handler)` wraps a `handler(args, conn) -> int` with a warehouse connection."""

from __future__ import annotations

import argparse

from .cli_controls import Run


def add_commands(sub: argparse._SubParsersAction, run: Run) -> None:
    """Register the command (not yet implemented: registers nothing)."""
