"""``opsmgr backup``: snapshots and the PITR window, on-demand snapshots, restore jobs and their progress.

Owns the ``backup`` Typer group (other modules may attach commands to it, e.g. ``restore-stores``); every
command is a thin client of the public API through :mod:`opsmgr.cli.api` and imports nothing from the
server or the backup daemon.
"""

from __future__ import annotations

import typer

backup_app = typer.Typer(no_args_is_help=True, help="Continuous backup: snapshots, PITR window, restores.")
