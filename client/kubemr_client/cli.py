"""The ``submit``, ``status``, ``logs`` and ``delete`` command lines, added to ``kubemr``.

Parsing only: each handler lives in :mod:`kubemr_client.commands` and is imported when it
runs, so ``kubemr worker`` in a pod never loads the Kubernetes client.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubemr import bundles
from kubemr import cli as runtime_cli
from kubemr.cli import Command
from kubemr_operator import manifests


def _guarded(handler: str) -> Command:
    """The handler, imported when it runs (the runtime's own commands never load the
    Kubernetes client); client errors become a message and exit code 2, as the runtime's
    errors do."""

    def run(args: argparse.Namespace) -> int:
        try:
            from kubemr_client import commands  # noqa: PLC0415
        except ImportError as exc:
            print(
                f"kubemr {args.command}: needs the Kubernetes client ({exc.name}): "
                "pip install 'kubemr[submit]'",
                file=sys.stderr,
            )
            return 2
        try:
            code: int = getattr(commands, handler)(args)
        except commands.ClientError as exc:
            print(f"kubemr: {exc}", file=sys.stderr)
            return 2
        return code

    return run


def register(commands: Any) -> dict[str, Command]:
    """Add the four commands to the ``kubemr`` parser (a :data:`kubemr.cli.Extension`)."""
    add: Callable[..., argparse.ArgumentParser] = commands.add_parser

    submit = add(
        "submit",
        help="ship a job and its local code to the cluster and follow it",
        description="Pack the app (--app, or the file spec.app.module names) and its "
        "requirements (resolved into wheels here) into the cluster, create the "
        "MapReduceJob with the current kubeconfig, and follow it until it ends "
        "(Ctrl-C detaches; the job keeps running). Exit code: 0 succeeded, 1 failed.",
    )
    submit.add_argument("manifest", type=Path)
    submit.add_argument(
        "--app", type=Path, help="the app to ship: a .py file or a package directory"
    )
    submit.add_argument(
        "--requirements",
        type=Path,
        metavar="FILE",
        help="a requirements file, added to spec.app.requirements",
    )
    submit.add_argument(
        "--python-version",
        default=bundles.Target().python_version,
        help="the pods' Python, for which wheels are resolved [%(default)s]",
    )
    submit.add_argument(
        "--platform",
        action="append",
        default=[],
        help="a wheel platform tag the pods accept besides pure Python (repeatable) "
        f"[{', '.join(bundles.Target().platforms)}]",
    )
    submit.add_argument("--no-wait", action="store_true", help="return once the job is created")
    submit.add_argument("-n", "--namespace", help="default: the manifest's, else the kubeconfig's")

    status = add("status", help="a job's phase, progress, outcome and conditions")
    status.add_argument("name")
    status.add_argument("-n", "--namespace")

    logs = add("logs", help="the log of a job's pod (the master by default)")
    logs.add_argument("name")
    logs.add_argument(
        "--role", choices=(manifests.MASTER, manifests.MAPPER, manifests.REDUCER), default="master"
    )
    logs.add_argument("--index", type=int, default=0, help="the mapper or reducer slot")
    logs.add_argument(
        "--container",
        help=f"a container other than the runtime's (e.g. {manifests.INSTALL_CONTAINER})",
    )
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--namespace")

    delete = add("delete", help="delete a job and everything it owns")
    delete.add_argument("name")
    delete.add_argument("-n", "--namespace")

    return {
        name: _guarded(handler)
        for name, handler in {
            "submit": "cmd_submit",
            "status": "cmd_status",
            "logs": "cmd_logs",
            "delete": "cmd_delete",
        }.items()
    }


def main() -> None:
    """The ``kubemr`` console script: the runtime's commands and these four."""
    runtime_cli.main(extensions=[register])
