"""Authenticated control and shuffle: while a real local job runs, callers without the
job's token, or with another one, are refused (UNAUTHENTICATED) by the master and by a
mapper's shuffle server, and counted; the job still succeeds, equal to the oracle.

The launcher runs in this process; its progress callback (the master's status, every
~50 ms) is where the test strikes, once a map output exists. The master's address is in
the launcher's address file and a mapper's shuffle address in the master's log (the
"registered <worker> at <host:port>" line).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from kubemr import auth, plan, spec
from kubemr.launcher import Launcher
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.proto import mapreduce_pb2_grpc as pb_grpc

from testjobs import APPS, ROOT, manifest, sorted_output, word_input

Oracle = Callable[[dict[str, Any]], list[str]]
REGISTERED = re.compile(r"registered (\S+) at (\S+:\d+)")


def _code(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _probe(master: str, shuffle: str, token: str | None) -> dict[str, grpc.StatusCode]:
    """The codes of FetchPartition, Register and ReportTask called with ``token``."""
    metadata = auth.call_metadata(token) if token else ()
    with grpc.insecure_channel(master) as control, grpc.insecure_channel(shuffle) as data:
        masters = pb_grpc.MasterStub(control)
        mapper = pb_grpc.ShuffleStub(data)
        fetch = pb.FetchRequest(job="auth", map_task=0, attempt_id="m-0-0", partition=0)
        return {
            "FetchPartition": _code(
                lambda: list(mapper.FetchPartition(fetch, timeout=5, metadata=metadata))
            ),
            "Register": _code(
                lambda: masters.Register(
                    pb.RegisterRequest(role=pb.MAPPER, address=shuffle, name="intruder"),
                    timeout=5,
                    metadata=metadata,
                )
            ),
            "ReportTask": _code(
                lambda: masters.ReportTask(
                    pb.TaskReport(worker_id="mapper-0", attempt_id="m-0-0"),
                    timeout=5,
                    metadata=metadata,
                )
            ),
        }


def _refused(summary: dict[str, Any], service: str) -> float:
    return sum(
        row["value"]
        for snapshot in summary["metrics"].values()
        for row in snapshot.get("kubemr_auth_refused_total", [])
        if row["labels"].get("service") == service
    )


def test_calls_without_the_job_token_are_refused(tmp_path: Path, oracle: Oracle) -> None:
    doc = manifest(
        "auth",
        {
            "module": f"{APPS / 'crash.py'}:Crash",
            "args": {"crash": "0", "stall": "0", "delay": "0.002", "reduce_delay": "0.002"},
        },
        word_input(tmp_path),
        tmp_path / "out",
        input={"splitSize": "2Ki"},
        reduceTasks=2,
        mapper={"replicas": 2},
        reducer={"replicas": 1},
    )
    job_plan = plan.plan_job(spec.parse_job(doc, "auth test"), [ROOT])
    probes: dict[str, dict[str, grpc.StatusCode]] = {}
    holder: list[Launcher] = []

    def on_status(status: pb.JobStatus) -> None:
        launcher = holder[0]
        if probes or status.maps_done < 1 or launcher.master is None:
            return
        registered = REGISTERED.findall(launcher.master.log.read_text(encoding="utf-8"))
        shuffles = [address for worker, address in registered if "mapper" in worker]
        if not shuffles:
            return
        master = launcher.address_file.read_text(encoding="utf-8").strip()
        probes["none"] = _probe(master, shuffles[0], None)
        probes["wrong"] = _probe(master, shuffles[0], "not-" + launcher.token)
        # The right token gets past the check (a made-up attempt has no output).
        with grpc.insecure_channel(shuffles[0]) as data:
            fetch = pb.FetchRequest(job="auth", map_task=0, attempt_id="m-0-0", partition=0)
            stream = pb_grpc.ShuffleStub(data).FetchPartition(
                fetch, timeout=5, metadata=auth.call_metadata(launcher.token)
            )
            probes["right"] = {"FetchPartition": _code(lambda: list(stream))}

    launcher = Launcher(job_plan, search=[ROOT], progress=on_status, metrics=True)
    holder.append(launcher)
    run = launcher.run()

    assert probes, "the job ended before the test could probe it"
    refused = grpc.StatusCode.UNAUTHENTICATED
    for name in ("none", "wrong"):
        assert probes[name] == {
            "FetchPartition": refused,
            "Register": refused,
            "ReportTask": refused,
        }, name
    assert probes["right"]["FetchPartition"] == grpc.StatusCode.NOT_FOUND
    assert not any("intruder" in name for name in run.summary["workerNames"])
    assert sorted_output(tmp_path / "out") == oracle(doc)
    assert _refused(run.summary, "master") == 4
    assert _refused(run.summary, "shuffle") == 2


@pytest.mark.parametrize("command", ["master", "worker"])
def test_processes_refuse_to_start_without_a_token(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubemr import cli  # noqa: PLC0415

    monkeypatch.delenv("KUBEMR_TOKEN", raising=False)
    args = ["--job", "job.yaml"] if command == "master" else ["--role", "mapper"]
    args += ["--master", "127.0.0.1:1"] if command == "worker" else []
    with pytest.raises(SystemExit, match="KUBEMR_TOKEN is not set"):
        cli.main([command, *args])
