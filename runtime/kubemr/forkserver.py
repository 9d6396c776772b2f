"""The fork server: one warm interpreter that starts a local job's processes by ``fork``.

``kubemr run`` runs a master and several workers on one machine. Started as fresh
interpreters, each of them imports grpc, pydantic and kubemr and builds the job-spec
model before doing anything: about 0.6 CPU-seconds per process, which on two cores is a
visible share of a small job. Instead the launcher starts this server once; it imports
all of that once (:data:`PRELOAD`) and forks every process of the job from that state,
each ready in milliseconds, sharing the imported pages with its siblings.

The launcher's end is :class:`kubemr.spawner.Spawner`. The server is a fresh
interpreter itself (``python -m kubemr.forkserver``), never a fork of the launcher: the
launcher (or a test process driving it) may hold gRPC channels and threads, which a
forked child must not inherit. The server never creates any.

Protocol, JSON lines:

* the launcher writes ``{"argv": [...], "env": {...}, "log": PATH}`` to the server's
  stdin for each process to start, and ``{"signal": N, "signum": S}`` to signal child
  N's process group (no reply; ignored once N has been reaped, so a signal never reaches
  a process that reused the pid: the server, which reaps, is the one that knows);
* the server answers on stdout ``{"pid": N}`` for each request, in order, and
  ``{"exited": N, "code": C, "maxrss": BYTES}`` when a child exits (``code`` as
  :func:`os.waitstatus_to_exitcode` gives it: negative for a signal; ``maxrss`` from
  ``wait4``, so every process's peak memory is known).

A child is what ``python -m kubemr ARGV`` would be: the leader of its own process group
(the launcher signals the group) in the server's session, which has no terminal; stdin
from /dev/null, stdout and stderr into ``log``, exactly ``env`` as its environment, its command
line in ps and /proc (``python -m kubemr ARGV``, by setproctitle), and
:func:`kubemr.cli.main` run with ``argv``. Settings read from the environment at import
(``KUBEMR_NATIVE``) are the server's, which are the launcher's.

When its stdin closes, the server stops taking requests, sends SIGTERM to the process
group of every child still running, SIGKILL after :data:`STOP_GRACE`, reports their
exits, and exits itself: a launcher that dies leaves no process of its job behind.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import select
import signal
import sys
import time
import traceback
from typing import Any, NoReturn

import setproctitle

PRELOAD = ("kubemr.cli", "kubemr.launcher", "kubemr.master", "kubemr.worker")
"""What the server imports once for every process it forks."""
STOP_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL for children left running when the launcher goes."""


class Server:
    """The server's state: its live children and the bytes of a partial request line."""

    def __init__(self, requests: int, replies: int) -> None:
        self.requests = requests
        self.replies = replies
        self.children: set[int] = set()
        self.pending = b""
        self.wakeup_r, self.wakeup_w = os.pipe()
        for fd in (self.wakeup_r, self.wakeup_w):
            os.set_blocking(fd, False)

    def serve(self) -> None:
        """Start children as requested and report their exits, until stdin closes and
        every child has exited."""
        signal.set_wakeup_fd(self.wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select below
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the launcher's to handle
        reading, stopping_at = True, 0.0
        while reading or self.children:
            watched = [self.wakeup_r, self.requests] if reading else [self.wakeup_r]
            timeout = None if reading else max(stopping_at - time.monotonic(), 0.0)
            ready, _, _ = select.select(watched, [], [], timeout)
            if self.wakeup_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wakeup_r, 4096)
            if self.requests in ready and not self._read_requests():
                reading, stopping_at = False, time.monotonic() + STOP_GRACE
                self._signal_children(signal.SIGTERM)
            self._reap()
            if not reading and self.children and time.monotonic() >= stopping_at:
                self._signal_children(signal.SIGKILL)
                stopping_at = float("inf")

    def _read_requests(self) -> bool:
        """Start a child per complete request line; False once stdin is closed."""
        chunk = os.read(self.requests, 1 << 16)
        if not chunk:
            return False
        self.pending += chunk
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            request = json.loads(line)
            if "signal" in request:
                if request["signal"] in self.children:  # else reaped: the pid is not ours
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(request["signal"], request["signum"])
                continue
            pid = self._fork(request)
            self.children.add(pid)
            self._reply({"pid": pid})
        return True

    def _fork(self, request: dict[str, Any]) -> int:
        pid = os.fork()
        if pid == 0:
            _child(request, (self.requests, self.replies, self.wakeup_r, self.wakeup_w))
        # Both sides make the child a process group leader (whichever runs first), so the
        # group exists when the launcher learns the pid and signals it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.setpgid(pid, pid)
        return pid

    def _reap(self) -> None:
        while self.children:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                return
            self.children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            self._reply({"exited": pid, "code": code, "maxrss": usage.ru_maxrss * 1024})

    def _signal_children(self, signum: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)

    def _reply(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with contextlib.suppress(BrokenPipeError):  # the launcher is gone: go on reaping
            os.write(self.replies, data)


def _child(request: dict[str, Any], server_fds: tuple[int, ...]) -> NoReturn:
    """Become ``python -m kubemr ARGV`` as the request describes, run it, and exit."""
    code: int = 1
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in (null, log, *server_fds):
            os.close(fd)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 (the process's own)
        sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), line_buffering=True)  # noqa: SIM115
        sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), line_buffering=True)  # noqa: SIM115
        argv = [str(arg) for arg in request["argv"]]
        # before the environment changes: setproctitle moves it out of the title's way
        setproctitle.setproctitle(" ".join([sys.executable, "-m", "kubemr", *argv]))
        os.environ.clear()
        os.environ.update(request["env"])
        logging.root.handlers.clear()
        sys.argv = ["kubemr", *argv]
        from kubemr import cli  # noqa: PLC0415 (preloaded: no import happens here)

        cli.main(argv)
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main() -> None:
    """``python -m kubemr.forkserver``: preload, then serve on stdin and stdout."""
    for module in PRELOAD:
        importlib.import_module(module)
    replies = os.dup(1)  # children get fds 0-2 of their own; replies keep their own fd
    requests = os.dup(0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    Server(requests, replies).serve()
    os._exit(0)  # nothing to tear down: skip the interpreter's (the launcher waits for it)


if __name__ == "__main__":
    main()
