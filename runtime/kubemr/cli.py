"""The ``kubemr`` command: ``run``, ``master``, ``worker``, ``validate``, ``plan``, ``ui``
and ``install-app`` (plus the commands an extension adds: :data:`Extension`).

This is the only place that reads the environment and the only place that exits.
In a pod the operator sets ``KUBEMR_*`` variables (and ``POD_NAME``/``POD_IP`` from the
downward API); flags override them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import yaml

from kubemr import __version__, contract, plan, sizing, spec
from kubemr import address as addresses
from kubemr.config import MasterConfig, Slowdown, WorkerConfig
from kubemr.contract import (  # the names the operator sets (kubemr.contract)
    ENV_COARSE_LOCK,
    ENV_JOB_FILE,
    ENV_LOGS,
    ENV_MASTER,
    ENV_MASTER_PORT,
    ENV_MONITORING_PORT,
    ENV_POD_IP,
    ENV_POD_NAME,
    ENV_ROLE,
    ENV_SHUFFLE_PORT,
    ENV_STATUS_LINGER,
    ENV_TOKEN,
    ENV_WORK_DIR,
)

MASTER_FILE_DEADLINE = 90.0
"""Seconds a worker started with ``--master-file`` waits for the master's address: longer
than ``kubemr run`` waits for its master to serve (60 s), so the launcher, not the
worker, reports a master that never serves."""

PROGRESS_EVERY = 0.25
"""Seconds between the status polls that feed ``kubemr run``'s progress bars."""

Command = Callable[[argparse.Namespace], int]
"""A command's handler: its parsed arguments in, the exit code out."""
Extension = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], dict[str, Command]]
"""Adds commands to the parser and returns their handlers (``kubemr_client`` adds
``submit``, ``status``, ``logs`` and ``delete`` this way: the runtime knows nothing of
Kubernetes)."""


def _monitoring_port(env: Mapping[str, str]) -> int | None:
    value = env.get(ENV_MONITORING_PORT)
    return int(value) if value else None


def _monitoring_args(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    parser.add_argument(
        "--monitoring-port",
        type=int,
        default=_monitoring_port(env),
        help=f"serve /metrics and /healthz over HTTP on this port [${ENV_MONITORING_PORT}]",
    )
    parser.add_argument(
        "--monitoring-file", type=Path, help="write host:port of the monitoring server here"
    )
    parser.add_argument(
        "--metrics-snapshot", type=Path, help="write the final metrics here when done"
    )


def _auth_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure",
        action="store_true",
        help=f"serve and call without a job token when ${ENV_TOKEN} is not set (anyone who "
        "can reach the ports can then drive the job and read its map output)",
    )


def _token(command: str, args: argparse.Namespace, env: Mapping[str, str]) -> str:
    """The job token from the environment; without one, only ``--insecure`` runs."""
    token = env.get(ENV_TOKEN, "")
    if not token and not args.insecure:
        raise SystemExit(
            f"kubemr {command}: ${ENV_TOKEN} is not set; set it to the job's token (the "
            "operator does, from the Secret <job>-token) or pass --insecure to run "
            "unauthenticated"
        )
    return token


def _slowdown(text: str) -> Slowdown:
    slot, sep, factor = text.partition("=")
    try:
        value = float(factor)
    except ValueError:
        value = 0.0
    if not sep or not slot or not value >= 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected SLOT=FACTOR, e.g. mapper-0=10 (FACTOR a number >= 1)"
        )
    return Slowdown(slot, value)


def _parser(
    env: Mapping[str, str],
    extensions: Sequence[Extension] = (),
    handlers: dict[str, Command] | None = None,
) -> argparse.ArgumentParser:
    """The parser; each extension's commands are added, their handlers into ``handlers``."""
    parser = argparse.ArgumentParser(prog="kubemr", description="MapReduce on Kubernetes.")
    parser.add_argument("--version", action="version", version=f"kubemr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a MapReduceJob manifest on this machine")
    run.add_argument("manifest", type=Path)
    run.add_argument(
        "--sequential",
        action="store_true",
        help="run in this process, with no shuffle (the reference oracle)",
    )
    run.add_argument(
        "--keep-workdir", action="store_true", help="keep logs and local disks of the processes"
    )
    run.add_argument(
        "--top",
        type=int,
        default=0,
        metavar="N",
        help="print the N output lines with the largest numeric values",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--metrics",
        action="store_true",
        help="serve every process's /metrics while the job runs (prints the URLs) and add "
        "the final figures to _summary.json",
    )
    run.add_argument(
        "--ui",
        action="store_true",
        help="serve the job's status page (prints its URL) and keep serving the final "
        "report after the job ends, until Ctrl-C",
    )
    run.add_argument(
        "--slow-worker",
        type=_slowdown,
        action="append",
        default=[],
        metavar="SLOT=FACTOR",
        help="for testing: make a worker slot (mapper-0, reducer-1, ...) FACTOR times "
        "slower by stopping and resuming its process (SIGSTOP/SIGCONT); repeatable",
    )

    validate = commands.add_parser("validate", help="check a manifest and its input")
    validate.add_argument("manifest", type=Path)

    ui = commands.add_parser(
        "ui", help="serve the status page of a finished job from its kept report, until Ctrl-C"
    )
    ui.add_argument(
        "report",
        help="a job's output directory (or s3:// prefix), or its _summary.json or _FAILED",
    )
    ui.add_argument("--bind", default="127.0.0.1", help="address to serve on")
    ui.add_argument("--port", type=int, default=0, help="port to serve on; 0 picks a free one")

    sizes = commands.add_parser(
        "plan",
        help="propose splitSize, M, R and replicas for an input on W workers",
        description="Propose spec.input.splitSize (so M), spec.reduceTasks (R) and the "
        "mapper and reducer replicas for an input on W workers, and the master's "
        "memory; --apply writes them into a manifest.",
    )
    source = sizes.add_mutually_exclusive_group()
    source.add_argument("--input-size", metavar="SIZE", help="the input's size: 12.8T, 500Gi")
    source.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="PATH",
        help="input files, directories, globs or s3:// URIs (repeatable): their sizes",
    )
    sizes.add_argument("--workers", type=int, required=True, help="W: machines the job may use")
    sizes.add_argument(
        "--split-size",
        default=sizing.DEFAULT_SPLIT,
        help=f"bytes per map task [{sizing.DEFAULT_SPLIT}, the paper's 64 MB]",
    )
    sizes.add_argument(
        "--reduce-factor",
        type=float,
        default=sizing.REDUCE_FACTOR,
        help=f"R per worker [{sizing.REDUCE_FACTOR:g}, the paper's 5,000 for 2,000]",
    )
    sizes.add_argument(
        "--apply",
        type=Path,
        metavar="MANIFEST",
        help="write the values into this manifest; without --input or --input-size its "
        "spec.input.paths are the input",
    )

    master = commands.add_parser("master", help="serve as a job's master (pods use this)")
    master.add_argument(
        "--job",
        type=Path,
        default=env.get(ENV_JOB_FILE),
        help=f"the manifest (YAML or JSON) [${ENV_JOB_FILE}]",
    )
    master.add_argument("--bind", default="0.0.0.0")
    master.add_argument(
        "--advertise-host",
        default=env.get(ENV_POD_IP, "127.0.0.1"),
        help=f"host written to --address-file and --monitoring-file [${ENV_POD_IP}]",
    )
    master.add_argument(
        "--port", type=int, default=int(env.get(ENV_MASTER_PORT, contract.MASTER_PORT))
    )
    _monitoring_args(master, env)
    master.add_argument(
        "--status-linger",
        type=float,
        default=float(env.get(ENV_STATUS_LINGER) or 0.0),
        help=f"keep serving /status after the job until it is read [${ENV_STATUS_LINGER}]",
    )
    master.add_argument("--address-file", type=Path)
    master.add_argument("--summary-file", type=Path)
    master.add_argument("--search", type=Path, action="append", default=[])
    master.add_argument(
        "--logs",
        default=env.get(ENV_LOGS, ""),
        help=f"where a worker's log is, {{worker}} for its name [${ENV_LOGS}]",
    )
    _auth_args(master)

    worker = commands.add_parser("worker", help="serve as a mapper or reducer (pods use this)")
    worker.add_argument("--role", choices=contract.WORKER_ROLES, default=env.get(ENV_ROLE))
    worker.add_argument("--master", default=env.get(ENV_MASTER), help=f"host:port [${ENV_MASTER}]")
    worker.add_argument(
        "--master-file",
        type=Path,
        help="instead of --master: wait for the master to write its host:port to this file "
        "(kubemr run starts its workers beside the master, not after it)",
    )
    worker.add_argument("--name", default=env.get(ENV_POD_NAME, "worker"))
    worker.add_argument(
        "--work-dir", type=Path, default=Path(env.get(ENV_WORK_DIR, "/tmp/kubemr-worker"))
    )
    worker.add_argument("--bind", default="0.0.0.0")
    worker.add_argument(
        "--shuffle-port", type=int, default=int(env.get(ENV_SHUFFLE_PORT, contract.SHUFFLE_PORT))
    )
    worker.add_argument("--advertise-host", default=env.get(ENV_POD_IP, "127.0.0.1"))
    worker.add_argument("--search", type=Path, action="append", default=[])
    _monitoring_args(worker, env)
    _auth_args(worker)
    worker.set_defaults(coarse_fetch_lock=env.get(ENV_COARSE_LOCK, "") == "1")

    install = commands.add_parser(
        "install-app",
        help="unpack the job's code bundle and install its requirements from the shipped "
        "wheels (a pod's init container runs this)",
    )
    install.add_argument(
        "--job", type=Path, default=env.get(ENV_JOB_FILE), help=f"the manifest [${ENV_JOB_FILE}]"
    )
    install.add_argument(
        "--bundle-dir",
        type=Path,
        help="where the bundle's ConfigMap is mounted (for spec.app.bundle.configMap)",
    )
    install.add_argument(
        "--into", type=Path, required=True, help="a writable directory (an emptyDir)"
    )
    for extension in extensions:
        added = extension(commands)
        if handlers is not None:
            handlers.update(added)
    return parser


def _setup_logging(role: str, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s",
    )


def _load(path: Path) -> spec.MapReduceJob:
    if path.suffix == ".json":
        return spec.parse_job(json.loads(path.read_text(encoding="utf-8")), str(path))
    return spec.load_job(path)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


async def _until_sigterm(role: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run a master or worker that stops cleanly on SIGTERM. In a pod it is PID 1, and
    the kernel drops signals PID 1 has no handler for: without this, every deletion
    waits out the pod's whole grace period and ends in SIGKILL."""
    terminate = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate.set)
    return await role(terminate)


def _cmd_run(args: argparse.Namespace) -> int:
    from kubemr import launcher, outputdir, progress  # noqa: PLC0415 (keeps workers lean)

    # SIGTERM (a supervisor's or CI runner's stop) ends the run as Ctrl-C does: every
    # process stopped, partial output removed, exit 130.
    signal.signal(signal.SIGTERM, _interrupt)
    # SIGINT too, explicitly: a process started with SIGINT ignored (a background job of a
    # script, nohup) keeps ignoring it in Python, and a supervisor's SIGINT did nothing.
    signal.signal(signal.SIGINT, _interrupt)

    job = spec.load_job(args.manifest)
    search = [Path.cwd(), args.manifest.resolve().parent]
    job_plan = plan.plan_job(job, search)
    output = outputdir.OutputDir.of(job.spec)
    if args.sequential and args.ui:
        raise SystemExit("kubemr run: --ui shows the master's page; --sequential has no master")
    if args.sequential:
        from kubemr.sequential import run_sequential  # noqa: PLC0415

        progress.report(output, run_sequential(job_plan, search), top=args.top)
        return 0
    bar = progress.JobProgress(job.metadata.name, enabled=not args.quiet)
    local = launcher.Launcher(
        job_plan,
        search=search,
        keep_workdir=args.keep_workdir or args.ui,  # --ui: the page names the logs
        progress=bar.update if bar.shown else None,  # no status polls nobody sees
        progress_every=PROGRESS_EVERY,
        metrics=args.metrics,
        on_metrics_url=bar.metrics_url,
        slow_workers=args.slow_worker,
        ui=args.ui,
        on_status_page=bar.status_page,
    )
    failure: launcher.LaunchError | None = None
    try:
        try:
            with bar:
                summary = local.run().summary
        except launcher.LaunchError as exc:
            if not args.ui:
                raise
            failure = exc
        if failure is not None:
            print(f"kubemr: {failure}", file=sys.stderr)
        else:
            progress.report(output, summary, top=args.top)
        if args.ui:
            _serve_kept(output.path, local.status_page)
    finally:
        if args.ui and not args.keep_workdir:
            shutil.rmtree(local.workdir, ignore_errors=True)
    return 1 if failure is not None else 0


def _serve_kept(output: str, page: str | None) -> None:
    """``kubemr run --ui`` after the job: serve its kept report where the master served
    the live page (so an open page keeps working), until Ctrl-C."""
    from kubemr import report, statusui  # noqa: PLC0415

    port = addresses.split(page.removeprefix("http://").rstrip("/"))[1] if page else 0
    try:
        kept = statusui.load_kept(output)
    except report.ReportError as exc:  # the job never got far enough to keep one
        print(f"kubemr: no status page to keep serving: {exc}", file=sys.stderr)
        return
    statusui.serve_until_interrupted(kept, "127.0.0.1", port)


def _cmd_ui(args: argparse.Namespace) -> int:
    from kubemr import statusui  # noqa: PLC0415

    statusui.serve_until_interrupted(statusui.load_kept(args.report), args.bind, args.port)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    job = spec.load_job(args.manifest)
    job_plan = plan.plan_job(job, [Path.cwd(), args.manifest.resolve().parent])
    steps = job_plan.steps or (job,)
    print(
        f"{args.manifest}: valid; {len(job_plan.splits)} map tasks, "
        + (f"{len(steps)} steps of " if job_plan.steps else "")
        + f"{', '.join(str(s.spec.reduce_tasks) for s in steps)} reduce tasks"
    )
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from kubemr import inputs  # noqa: PLC0415

    document: dict[str, object] = {}
    if args.apply is not None:
        loaded = yaml.safe_load(args.apply.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise spec.SpecError(str(args.apply), ["the document is not a mapping"])
        document = loaded
    try:
        if args.input_size is not None:
            files = [sizing.parse_size(args.input_size)]
        elif args.input:
            files = [size for _, size in inputs.resolve_inputs(args.input)]
        elif document:
            job = spec.parse_job(document, str(args.apply))
            files = [
                size for _, size in inputs.resolve_inputs(job.spec.input.paths, job.spec.storage)
            ]
        else:
            raise ValueError("give --input-size, --input or a manifest to --apply")
        proposal = sizing.propose(
            files, args.workers, split_size=args.split_size, reduce_factor=args.reduce_factor
        )
    except ValueError as exc:
        print(f"kubemr plan: {exc}", file=sys.stderr)
        return 2
    print(sizing.render(proposal))
    if args.apply is not None:
        updated = sizing.apply(document, proposal)
        spec.parse_job(updated, str(args.apply))  # never write a manifest that does not load
        text = yaml.safe_dump(updated, sort_keys=False)
        tmp = args.apply.with_name(args.apply.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.apply)
        print(
            f"wrote splitSize, reduceTasks and replicas into {args.apply} "
            "(its comments are not kept: PyYAML rewrites the file)"
        )
    return 0


def _cmd_master(args: argparse.Namespace) -> int:
    from kubemr import master  # noqa: PLC0415

    if args.job is None:
        raise SystemExit(f"kubemr master: --job or ${ENV_JOB_FILE} is required")
    token = _token("master", args, os.environ)
    job = _load(args.job)
    search = [Path.cwd(), *args.search]
    job_plan = plan.plan_job(job, search, check_output=True)
    config = MasterConfig(
        bind=args.bind,
        port=args.port,
        advertise_host=args.advertise_host,
        address_file=args.address_file,
        summary_file=args.summary_file,
        monitoring_port=args.monitoring_port,
        monitoring_file=args.monitoring_file,
        metrics_snapshot=args.metrics_snapshot,
        status_linger=args.status_linger,
        search_path=tuple(search),
        token=token,
        logs=args.logs,
    )
    return asyncio.run(_until_sigterm(lambda terminate: master.serve(job_plan, config, terminate)))


def _cmd_worker(args: argparse.Namespace) -> int:
    from kubemr import worker  # noqa: PLC0415

    if not args.role or not (args.master or args.master_file):
        raise SystemExit(
            f"kubemr worker: --role/${ENV_ROLE} and --master/${ENV_MASTER} are required"
        )
    master = args.master
    if not master:  # imported the worker beside the master's start: now wait for its address
        try:
            master = addresses.await_file(args.master_file, MASTER_FILE_DEADLINE)
        except (TimeoutError, ValueError) as exc:
            raise SystemExit(f"kubemr worker: --master-file {exc}") from None
    config = WorkerConfig(
        role=args.role,
        master=master,
        name=args.name,
        work_dir=args.work_dir,
        bind=args.bind,
        shuffle_port=args.shuffle_port,
        advertise_host=args.advertise_host,
        search_path=tuple([Path.cwd(), *args.search]),
        monitoring_port=args.monitoring_port,
        monitoring_file=args.monitoring_file,
        metrics_snapshot=args.metrics_snapshot,
        coarse_fetch_lock=args.coarse_fetch_lock,
        token=_token("worker", args, os.environ),
    )
    return asyncio.run(_until_sigterm(lambda terminate: worker.run_worker(config, terminate)))


def _cmd_install_app(args: argparse.Namespace) -> int:
    from kubemr import bundles  # noqa: PLC0415

    if args.job is None:
        raise SystemExit(f"kubemr install-app: --job or ${ENV_JOB_FILE} is required")
    job = _load(args.job)
    bundle = job.spec.app.bundle
    if bundle is None:
        raise SystemExit(f"kubemr install-app: {args.job} has no spec.app.bundle")
    if bundle.url is not None:
        source = bundle.url
    elif args.bundle_dir is not None:
        source = str(args.bundle_dir / spec.BUNDLE_KEY)
    else:
        raise SystemExit("kubemr install-app: the bundle is a ConfigMap: give --bundle-dir")
    data = bundles.read(source, job.spec.storage)
    bundles.verify(data, bundle.sha256, source)
    requirements = bundles.unpack(data, args.into)
    try:
        bundles.install_requirements(args.into, requirements)
    except bundles.BundleError as exc:
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        raise
    print(
        f"installed the code bundle {bundle.sha256[:12]} ({len(data):,} bytes) into "
        f"{args.into}; requirements: {', '.join(requirements) or 'none'}"
    )
    return 0


def main(argv: list[str] | None = None, extensions: Sequence[Extension] = ()) -> None:
    """Entry point: run a command, turn known errors into a message and exit code 2."""
    from kubemr import apps, bundles, inputs, launcher, outputdir, report, stores  # noqa: PLC0415

    extra: dict[str, Command] = {}
    args = _parser(os.environ, extensions, extra).parse_args(argv)
    _setup_logging(
        args.command if args.command != "worker" else args.role or "worker", args.verbose
    )
    handlers = {
        "run": _cmd_run,
        "validate": _cmd_validate,
        "plan": _cmd_plan,
        "master": _cmd_master,
        "worker": _cmd_worker,
        "ui": _cmd_ui,
        "install-app": _cmd_install_app,
        **extra,
    }
    try:
        code = handlers[args.command](args)
    except (
        spec.SpecError,
        plan.PlanError,
        inputs.InputError,
        apps.AppError,
        outputdir.OutputError,
        stores.StoreError,
        report.ReportError,
        bundles.BundleError,
    ) as exc:
        print(f"kubemr: {exc}", file=sys.stderr)
        code = contract.EXIT_BAD_INPUT
    except launcher.LaunchError as exc:
        print(f"kubemr: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(
            "kubemr: interrupted; stopped every process and removed partial output", file=sys.stderr
        )
        code = 130
    sys.exit(code)
