"""The runtime and the operator hold one contract (kubemr.contract): the operator's pods
set what the runtime's entry points read, and the operator reads what the master serves."""

from __future__ import annotations

import configparser
import datetime
import json
import pkgutil
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubemr
import pytest
from kubemr import cli, contract, launcher, master, spec
from kubemr.outputdir import OutputDir
from kubemr_operator import crd, lifecycle, manifests
from kubemr_operator.manifests import JobRef
from kubemr_operator.settings import Settings

from testjobs import manifest, small_plan

REF = JobRef("wc", "batch", "uid-1")
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[master.JobState]:
    """A master's state for a small wordcount job (its journal closed afterwards)."""
    job = small_plan(tmp_path)
    output = OutputDir(job.job.spec.output.path)
    journal, replay = master.open_journal(output, job)
    yield master.JobState(job, output, journal, replay)
    journal.close()


def env_values(pod: dict[str, Any]) -> dict[str, str]:
    """The pod's environment as its process sees it (downward-API and Secret values
    stand in as placeholders)."""
    env = {}
    for entry in pod["spec"]["containers"][0]["env"]:
        env[entry["name"]] = entry.get("value", f"<{entry['name']}>")
    return env


def served_ports(pod: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}


def operator_view(report: dict[str, Any] | None, phase: str = "Running") -> lifecycle.Decision:
    model = spec.parse_job(
        manifest("wc", {"builtin": "wordcount"}, ["/data/in.txt"], Path("/out/wc"))
    )
    view = lifecycle.JobView("wc", "ns", "uid-1", 1, model, (), {"phase": phase})
    pods = [
        lifecycle.PodView(f"wc-{role}", role, 0, 0, "Running", NOW, ip="10.0.0.1", ready=True)
        for role in contract.ROLES
    ]
    observed = lifecycle.Observed(view, pods, contract.read_status(report), NOW)
    return lifecycle.decide(observed)


def test_the_pods_the_operator_makes_set_what_the_entry_points_read() -> None:
    settings = Settings()
    model = spec.parse_job(
        manifest("wc", {"builtin": "wordcount"}, ["/data/in.txt"], Path("/out/wc"))
    )
    master_pod = manifests.master_pod(REF, model, 0, settings)
    env = env_values(master_pod)
    args = cli._parser(env).parse_args(master_pod["spec"]["containers"][0]["args"])
    assert str(args.job) == env[contract.ENV_JOB_FILE]
    assert args.status_linger == settings.status_linger
    assert args.port == served_ports(master_pod)["grpc"] == contract.MASTER_PORT
    assert args.monitoring_port == served_ports(master_pod)["monitoring"]
    assert args.monitoring_port == contract.MONITORING_PORT
    assert env[contract.ENV_TOKEN] == f"<{contract.ENV_TOKEN}>"  # from the job's Secret
    for role in contract.WORKER_ROLES:
        pod = manifests.worker_pod(REF, model, role, 0, 0, settings)
        env = env_values(pod)
        args = cli._parser(env).parse_args(pod["spec"]["containers"][0]["args"])
        assert args.role == role
        assert args.master == f"wc-master.batch.svc:{contract.MASTER_PORT}"
        assert args.name == f"<{contract.ENV_POD_NAME}>"
        assert args.advertise_host == f"<{contract.ENV_POD_IP}>"
        assert args.monitoring_port == served_ports(pod)["monitoring"]
        if role == contract.MAPPER:
            assert args.shuffle_port == served_ports(pod)["shuffle"] == contract.SHUFFLE_PORT


def test_both_sides_name_the_resource_roles_and_exit_codes_alike() -> None:
    assert typing.get_args(spec.MapReduceJob.model_fields["api_version"].annotation) == (
        contract.API_VERSION,
    )
    assert (crd.GROUP, crd.VERSION, crd.PLURAL) == (
        contract.GROUP,
        contract.VERSION,
        contract.PLURAL,
    )
    assert manifests.ROLES == contract.ROLES
    assert (lifecycle.EXIT_BAD_INPUT, lifecycle.EXIT_JOB_FAILED) == (
        contract.EXIT_BAD_INPUT,
        contract.EXIT_JOB_FAILED,
    )
    assert set(launcher.MASTER_FINAL_CODES) == {0, lifecycle.EXIT_BAD_INPUT, 3}


def test_the_operator_reads_the_status_the_master_serves(state: master.JobState) -> None:
    state.accept("m0.a1", {"map_input_records": 10, "app:lines": 10}, [])
    served = json.loads(json.dumps(state.status_report().document()))  # over HTTP
    assert contract.read_status(served) == state.status_report()
    decision = operator_view(served)
    assert decision.status["runtimePhase"] == state.scheduler.phase.value
    total = len(state.scheduler.maps)
    assert decision.status["maps"] == f"0/{total}" and decision.status["reduces"] == "0/2"
    assert decision.status["counters"] == {"map_input_records": 10}
    assert decision.status["appCounters"] == {"lines": 10}
    assert decision.status["skippedRecords"] == 0
    assert "summary" not in served and "output" not in decision.status


def test_once_released_the_status_carries_the_summary_the_operator_lists(
    state: master.JobState,
) -> None:
    state.released.set()
    served = json.loads(json.dumps(state.status_report().document()))
    summary = json.loads(json.dumps(state.summary()))
    clock = ("wallSeconds", "phaseSeconds")  # they move between the two calls
    passed = {k: v for k, v in served["summary"].items() if k not in clock}
    assert passed == {k: v for k, v in summary.items() if k not in clock}  # passed through whole
    assert served["summary"].keys() == summary.keys()
    assert state.final_read.is_set()
    decision = operator_view(served)
    assert decision.status["wallSeconds"] == served["summary"]["wallSeconds"]
    assert decision.status["output"]["path"] == "/out/wc"


def test_a_document_that_is_not_a_status_report_is_not_read() -> None:
    assert contract.read_status({"maps": "3 of 8"}) is None
    assert contract.read_status([1, 2]) is None
    newer = contract.read_status({"phase": "Mapping", "fromANewerMaster": {"x": 1}})
    assert newer is not None and newer.phase == "Mapping"


def test_the_operator_may_import_only_the_spec_model_and_the_contract() -> None:
    linter = configparser.ConfigParser()
    linter.read(Path(__file__).resolve().parents[2] / ".importlinter")
    section = linter["importlinter:contract:operator-uses-only-the-spec-model"]
    forbidden = set(section["forbidden_modules"].split())
    modules = {f"kubemr.{m.name}" for m in pkgutil.iter_modules(kubemr.__path__)}
    # quantities and address: what spec and contract themselves import
    allowed = {"kubemr.spec", "kubemr.quantities", "kubemr.contract", "kubemr.address"}
    allowed.add("kubemr.__main__")
    # The C extension is not Python source (import-linter cannot list it); kubemr.native,
    # its only importer, is forbidden.
    allowed.add("kubemr._native")
    assert modules - allowed == forbidden
