"""The fork server starts ``kubemr`` commands as ``python -m kubemr`` would, and stops
what is left when its launcher goes (a real server process, forking real children)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubemr import __version__, spawner


@pytest.fixture
def server(tmp_path: Path) -> Iterator[spawner.Spawner]:
    client = spawner.Spawner(tmp_path / "forkserver.log")
    yield client
    client.close()


def test_a_child_runs_the_command_into_its_log_and_its_exit_is_reported(
    server: spawner.Spawner, tmp_path: Path
) -> None:
    log = tmp_path / "version.log"
    pid = server.spawn(["--version"], dict(os.environ), log)
    code, peak_rss = server.exit_of(pid, block=True) or (None, 0)
    assert code == 0
    assert peak_rss > 0
    assert log.read_text() == f"kubemr {__version__}\n"


def test_a_refused_command_exits_as_kubemr_would(server: spawner.Spawner, tmp_path: Path) -> None:
    log = tmp_path / "refused.log"
    pid = server.spawn(["no-such-command"], dict(os.environ), log)
    assert (server.exit_of(pid, block=True) or (None, 0))[0] == 2
    assert "invalid choice: 'no-such-command'" in log.read_text()


def test_a_child_has_exactly_the_environment_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEMR_JOB_FILE", str(tmp_path / "the-servers.json"))
    client = spawner.Spawner(tmp_path / "forkserver.log")  # started with that variable
    try:
        given = {"PATH": os.environ["PATH"], "KUBEMR_TOKEN": "t0ken"}
        with_job = {**given, "KUBEMR_JOB_FILE": str(tmp_path / "the-requests.json")}
        logs = [tmp_path / "with-job.log", tmp_path / "without.log"]
        pids = [
            client.spawn(["master"], env, log)
            for env, log in zip([with_job, given], logs, strict=True)
        ]
        for pid in pids:
            client.exit_of(pid, block=True)
    finally:
        client.close()
    assert "the-requests.json" in logs[0].read_text()
    assert "--job or $KUBEMR_JOB_FILE is required" in logs[1].read_text()


def test_a_child_leads_its_own_process_group_and_is_stopped_when_the_launcher_goes(
    tmp_path: Path,
) -> None:
    client = spawner.Spawner(tmp_path / "forkserver.log")
    never = tmp_path / "master.addr"  # never written: the worker waits for it
    argv = ["worker", "--role", "mapper", "--master-file", str(never), "--insecure"]
    log = tmp_path / "worker.log"
    pid = client.spawn(argv, dict(os.environ), log)
    try:
        assert os.getpgid(pid) == pid  # already: the launcher may signal it at once
        assert client.exit_of(pid) is None
    finally:
        client.close()  # what a launcher's exit does: the server stops its children
    assert (client.exit_of(pid) or (None, 0))[0] == -signal.SIGTERM


@pytest.mark.parametrize(
    ("argv", "early"),
    [
        (["run", "job.yaml"], True),
        (["-v", "run", "job.yaml", "--quiet"], True),
        (["run", "job.yaml", "--sequential"], False),
        (["run", "--help"], False),
        (["worker", "--role", "map"], False),
        (["validate", "run"], False),
        ([], False),
    ],
)
def test_only_a_run_that_starts_processes_starts_the_server_early(
    argv: list[str], early: bool
) -> None:
    assert spawner._runs_processes(argv) is early


def test_the_launcher_adopts_the_early_server_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    (tmp_path / "tmp").mkdir()
    spawner.start_early(["run", "job.yaml"])
    [early_log] = (tmp_path / "tmp").iterdir()
    server = spawner.adopt(tmp_path / "forkserver.log")
    assert server is not None and spawner.adopt(tmp_path / "again.log") is None
    try:
        assert server.log == tmp_path / "forkserver.log" and not early_log.exists()
        pid = server.spawn(["--version"], dict(os.environ), tmp_path / "version.log")
        assert (server.exit_of(pid, block=True) or (None, 0))[0] == 0
    finally:
        server.close()
    assert (tmp_path / "version.log").read_text() == f"kubemr {__version__}\n"


def test_an_early_server_no_launcher_takes_is_killed_and_its_log_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    spawner.start_early(["run", "job.yaml"])
    server = spawner._early
    assert server is not None
    spawner._discard()  # what atexit does when the run ended before starting a process
    assert server.popen.returncode is not None
    assert list(tmp_path.iterdir()) == []


def test_signals_reach_a_live_child_and_never_a_pid_the_server_did_not_start(
    server: spawner.Spawner, tmp_path: Path
) -> None:
    waiting = server.spawn(
        ["worker", "--role", "map", "--master-file", str(tmp_path / "never.addr")],
        {**os.environ, "KUBEMR_TOKEN": "t0ken"},
        tmp_path / "waiting.log",
    )
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a group of its own
    try:
        server.signal(stranger.pid, signal.SIGKILL)  # not the server's child: dropped
        server.signal(waiting, signal.SIGKILL)
        assert (server.exit_of(waiting, block=True) or (None, 0))[0] == -signal.SIGKILL
        server.signal(waiting, signal.SIGKILL)  # reaped: dropped, no error
        # the server handles requests in order: the stranger's was handled before the
        # child it killed was reported; a SIGKILL sent then would have landed by now
        with pytest.raises(subprocess.TimeoutExpired):
            stranger.wait(timeout=0.5)
    finally:
        stranger.kill()
        stranger.wait()
