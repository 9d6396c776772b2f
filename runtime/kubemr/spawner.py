"""The launcher's handle on the fork server (:mod:`kubemr.forkserver`).

:class:`Spawner` starts ``python -m kubemr.forkserver`` and asks it for the job's
processes: it writes one JSON request per process and reads the server's replies (each
new process's pid, then its exit code and peak memory) on a thread of its own, so the
launcher can poll any process's exit without blocking. The protocol is described in
:mod:`kubemr.forkserver`.

The server's own imports take most of a second. So that they overlap the command's
(the CLI, the job-spec model, the plan), the ``kubemr`` entry points call
:func:`start_early` first thing: for a ``kubemr run`` command line it starts the server
before anything else is imported, and the launcher takes that server (:func:`adopt`)
instead of starting one. A run that ends before it starts any process (a bad manifest)
kills the unused server on exit. This module imports nothing but the standard library.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

LOST = -255
"""The exit code given to a child whose exit the server can no longer report (the server
itself died; the launcher kills such children's process groups)."""


class ForkServerError(RuntimeError):
    """The fork server could not start a process (it exited, or refused the request)."""


class Spawner:
    """Starts the fork server and asks it for processes."""

    def __init__(self, log: Path) -> None:
        with log.open("wb") as sink:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "kubemr.forkserver"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=sink,
                start_new_session=True,  # the terminal's Ctrl-C is the launcher's alone
            )
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self._requests: IO[bytes] = self.popen.stdin
        self._changed = threading.Condition()
        self._pids: list[int] = []
        self._exits: dict[int, tuple[int, int]] = {}
        self._gone = False
        self.log = log
        self.temporary_log = False
        """Whether the log is a temporary file of :func:`start_early`'s, removed by
        :meth:`close` (until :meth:`move_log` moves it where the launcher keeps logs)."""
        self._reader = threading.Thread(
            target=self._read, args=(self.popen.stdout,), name="forkserver-replies", daemon=True
        )
        self._reader.start()

    def spawn(self, argv: list[str], env: dict[str, str], log: Path) -> int:
        """Start ``python -m kubemr ARGV`` (as the module docstring says); its pid."""
        with self._changed:
            self._send({"argv": argv, "env": env, "log": str(log)})
            while not self._pids and not self._gone:
                self._changed.wait()
            if not self._pids:
                raise ForkServerError(self._why())
            return self._pids.pop(0)

    def signal(self, pid: int, signum: int) -> None:
        """Send ``signum`` to child ``pid``'s process group, through the server, which
        drops it if the child was already reaped (its pid may belong to another process
        by then). Does nothing if the server is gone (its children are then :data:`LOST`)."""
        with self._changed:
            self._send({"signal": pid, "signum": int(signum)})

    def _send(self, request: dict[str, object]) -> None:
        """Write one request line (the caller holds ``_changed``); a server that is gone
        is marked so."""
        try:
            self._requests.write((json.dumps(request) + "\n").encode())
            self._requests.flush()
        except (BrokenPipeError, ValueError):
            self._gone = True
            self._changed.notify_all()

    def exit_of(self, pid: int, block: bool = False) -> tuple[int, int] | None:
        """``(exit code, peak RSS bytes)`` of child ``pid`` once it has exited, else None
        (or wait for it with ``block``). A child whose server died is :data:`LOST`."""
        with self._changed:
            while pid not in self._exits:
                if self._gone:
                    return LOST, 0
                if not block:
                    return None
                self._changed.wait()
            return self._exits[pid]

    def close(self) -> None:
        """Close the server's stdin and wait for it (it stops any child still running)."""
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._requests.close()
        self.popen.wait()
        self._reader.join()
        assert self.popen.stdout is not None
        self.popen.stdout.close()
        if self.temporary_log:
            self.log.unlink(missing_ok=True)

    def move_log(self, log: Path) -> None:
        """Rename the server's log to ``log`` (it keeps writing to it); where a rename
        cannot move it (another file system), it stays where it is, temporary as before."""
        try:
            os.replace(self.log, log)
        except OSError:
            return
        self.log, self.temporary_log = log, False

    def kill(self) -> None:
        """Stop a server that has started no process, at once, and wait for it."""
        self.popen.kill()
        self.close()

    def _read(self, replies: IO[bytes]) -> None:
        for line in replies:
            message = json.loads(line)
            with self._changed:
                if "pid" in message:
                    self._pids.append(message["pid"])
                else:
                    self._exits[message["exited"]] = (message["code"], message["maxrss"])
                self._changed.notify_all()
        with self._changed:
            self._gone = True
            self._changed.notify_all()

    def _why(self) -> str:
        code = self.popen.poll()
        try:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            tail = ""
        return f"the fork server ({self.log}) exited with code {code}:\n{tail}"


_early: Spawner | None = None
"""The server :func:`start_early` started, until the launcher adopts it."""


def _runs_processes(argv: Sequence[str]) -> bool:
    """Whether the command line ``argv`` (without the program) is a ``kubemr run`` that
    starts processes: its first word that is not an option is ``run``, and it is not
    ``--sequential`` or a request for help."""
    words = [a for a in argv if not a.startswith("-")]
    asks = {"--sequential", "-h", "--help", "--version"}
    return bool(words) and words[0] == "run" and not asks.intersection(argv)


def start_early(argv: Sequence[str]) -> None:
    """Start the fork server now if ``argv`` (the command line, without the program) is a
    ``kubemr run`` that will start processes; call it before importing anything heavy.
    Its log is a temporary file until the launcher adopts it."""
    global _early  # noqa: PLW0603 (one server per process, taken once)
    if _early is not None or not _runs_processes(argv):
        return
    fd, name = tempfile.mkstemp(prefix="kubemr-forkserver-", suffix=".log")
    os.close(fd)
    _early = Spawner(Path(name))
    _early.temporary_log = True
    atexit.register(_discard)


def adopt(log: Path) -> Spawner | None:
    """The server :func:`start_early` started, its log moved to ``log``; None if there
    is none (or it already died: the launcher then starts its own)."""
    global _early
    server, _early = _early, None
    if server is None:
        return None
    if server.popen.poll() is not None:
        server.close()
        return None
    server.move_log(log)
    return server


def _discard() -> None:
    """At exit: kill a server no launcher took, and remove its log."""
    global _early
    server, _early = _early, None
    if server is not None:
        server.kill()
