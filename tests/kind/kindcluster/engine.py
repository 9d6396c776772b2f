"""The Docker engine the kind tier talks to: the user's, or our own dockerd.

If a Docker engine already answers ``docker info`` (a user's machine, Docker Desktop, a
CI runner's), it is used as it is and never reconfigured or stopped. Otherwise we start
Debian's ``dockerd`` (installed with apt-get when missing) with everything under
:func:`layout.engine_root` -- data root, exec root, pid file, socket, log -- and
``--iptables=false --ip6tables=false``, so it leaves the host's firewall (and the FORWARD
policy the local control plane's bridge relies on) alone. Only that dockerd is ever
stopped by :func:`stop`, which also deletes the default bridge's interface (``docker0``)
if that dockerd created it.

Where this machine's capability bounding set lacks a capability Docker grants a
``--privileged`` container (kind's nodes are privileged), runc fails with "unable to
apply caps"; then our dockerd runs containers through ``tests/kind/engine/runc-capsfilter``
(``--add-runtime``/``--default-runtime``), which drops what cannot be granted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from localkube import deadlines

from kindcluster import debian, layout

ENGINE_READY = deadlines.Deadline("engine_ready", 60.0)
"""Seconds our dockerd may take to answer ``docker info``."""
ENGINE_EXIT = deadlines.Deadline("engine_exit", 60.0)
"""Seconds our dockerd may take to exit after SIGTERM."""
RUNTIME_NAME = "capsfilter"
"""The name our dockerd registers the runtime wrapper under."""
DEFAULT_BRIDGE = "docker0"
"""The network interface a dockerd creates for its default bridge network (and leaves
behind when it exits)."""


class EngineError(RuntimeError):
    """No Docker engine could be found or started."""


@dataclasses.dataclass(frozen=True)
class Engine:
    """How to reach one Docker engine."""

    env: dict[str, str]
    """The environment for ``docker`` and ``kind``: DOCKER_HOST set for our own engine."""
    ours: bool
    """True when dockerd was started by this tooling (and :func:`stop` may stop it)."""

    def docker(self, *args: str) -> str:
        """Run ``docker ARGS`` against this engine; return stdout, raise on failure."""
        result = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise EngineError(f"docker {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout


def _paths() -> dict[str, Path]:
    root = layout.engine_root()
    return {
        "root": root,
        "data": root / "data",
        "exec": root / "exec",
        "pidfile": root / "dockerd.pid",
        "socket": root / "docker.sock",
        "log": root / "dockerd.log",
        "config": root / "daemon.json",
        "bridge": root / "bridge-created",
    }


def _answers(env: dict[str, str]) -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


def _our_env() -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": f"unix://{_paths()['socket']}"}


def missing_capabilities() -> list[int]:
    """Capability numbers the kernel knows but our bounding set lacks."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return [bit for bit in range(last + 1) if not mask >> bit & 1]
    raise EngineError("/proc/self/status has no CapBnd line")


def _install_dockerd() -> None:
    try:
        debian.ensure_command("dockerd", "docker.io", "the kind tier's Docker engine")
    except debian.MissingPackageError as error:
        raise EngineError(
            f"no Docker engine answers `docker info` and dockerd is not installed ({error})"
        ) from None


def _our_pid() -> int | None:
    """The pid of the dockerd we started, if it still runs."""
    pidfile = _paths()["pidfile"]
    try:
        pid = int(pidfile.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if Path(command[0].decode()).name != "dockerd" or str(
        _paths()["data"]
    ).encode() not in b" ".join(command):
        return None
    return pid


def _start_ours() -> None:
    _install_dockerd()
    paths = _paths()
    for key in ("root", "data", "exec"):
        paths[key].mkdir(parents=True, exist_ok=True)
    paths["config"].write_text("{}\n")
    command = [
        "dockerd",
        f"--config-file={paths['config']}",
        f"--data-root={paths['data']}",
        f"--exec-root={paths['exec']}",
        f"--pidfile={paths['pidfile']}",
        f"--host=unix://{paths['socket']}",
        "--iptables=false",
        "--ip6tables=false",
    ]
    if missing_capabilities():
        # A copy beside the data root: the running engine must not depend on this checkout.
        wrapper = paths["root"] / layout.RUNTIME_WRAPPER.name
        shutil.copy2(layout.RUNTIME_WRAPPER, wrapper)
        command += [
            f"--add-runtime={RUNTIME_NAME}={wrapper}",
            f"--default-runtime={RUNTIME_NAME}",
        ]
    if _bridge_exists():
        paths["bridge"].unlink(missing_ok=True)  # not ours: left alone by stop()
    else:
        paths["bridge"].write_text(DEFAULT_BRIDGE + "\n")
    print(f"kind: starting our dockerd (log: {paths['log']})", file=sys.stderr, flush=True)
    with paths["log"].open("ab") as log:
        daemon = subprocess.Popen(
            command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    # It outlives this Popen (found again by its pid file, stopped by stop()): detach the
    # handle, or its collection warns (an error under pytest) while dockerd still runs.
    daemon.returncode = 0
    env = _our_env()
    deadlines.poll(
        ENGINE_READY,
        lambda: True if _answers(env) else None,
        f"our dockerd to answer on {paths['socket']}",
        interval=0.5,
        describe=lambda: paths["log"].read_text()[-800:],
    )


def ensure() -> Engine:
    """The engine to use: ours if it runs, else the user's, else ours started now."""
    if _our_pid() is not None and _answers(_our_env()):
        return Engine(env=_our_env(), ours=True)
    if _answers(dict(os.environ)):
        return Engine(env=dict(os.environ), ours=False)
    _start_ours()
    return Engine(env=_our_env(), ours=True)


def current() -> Engine | None:
    """The engine :func:`ensure` would use, without starting one."""
    if _our_pid() is not None and _answers(_our_env()):
        return Engine(env=_our_env(), ours=True)
    if _answers(dict(os.environ)):
        return Engine(env=dict(os.environ), ours=False)
    return None


def stop() -> bool:
    """Stop the dockerd this tooling started (never another); True if one was stopped.

    Then detach every mount left under our engine's folder, also when no dockerd of ours
    runs: a dockerd that was killed (a CI runner torn down mid-suite) leaves its data root
    bound on itself and its network namespace bound under the exec root."""
    pid = _our_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)

        def gone() -> bool | None:
            return True if not Path(f"/proc/{pid}").exists() or _zombie(pid) else None

        deadlines.poll(ENGINE_EXIT, gone, f"our dockerd (pid {pid}) to exit", interval=0.2)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # collect it if this process started it
    _unmount_left()
    _remove_our_bridge()
    return pid is not None


def _bridge_exists() -> bool:
    return Path("/sys/class/net", DEFAULT_BRIDGE).exists()


def _remove_our_bridge() -> None:
    """Delete the default bridge's interface if our dockerd created it (none was there
    when it started): dockerd leaves it behind when it exits."""
    marker = _paths()["bridge"]
    if not marker.exists():
        return
    if _bridge_exists():
        result = subprocess.run(
            ["ip", "link", "delete", DEFAULT_BRIDGE], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise EngineError(f"ip link delete {DEFAULT_BRIDGE}: {result.stderr.strip()}")
    marker.unlink()


def mounts() -> list[str]:
    """Mount points under our dockerd's folder (none once it stopped cleanly)."""
    prefix = str(layout.engine_root()) + "/"
    table = Path("/proc/self/mounts").read_text().splitlines()
    points = (line.split()[1] for line in table)
    return sorted((point for point in points if point.startswith(prefix)), reverse=True)


def _unmount_left() -> None:
    """Unmount, deepest first, what is mounted under our engine's folder once no dockerd of
    ours runs, so no mount outlives it and the cache folder can be deleted."""
    for point in mounts():
        result = subprocess.run(
            ["umount", "--lazy", point], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise EngineError(f"umount {point}: {result.stderr.strip()}")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return False
