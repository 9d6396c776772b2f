"""Turning a container spec into a local process: its environment and its argv.

No image is pulled. The container's ``command`` + ``args`` run with the project's
installed Python first on PATH (the repository's ``.venv/bin``), inside the pod's
network namespace (``ip netns exec``, which also gives it a private mount
namespace with the pod's hosts file as ``/etc/hosts``), a private UTS namespace
(hostname = pod name) and each volume bind-mounted at its ``mountPath``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localkube import apiclient, layout, volumes

VENV_BIN = layout.REPO_ROOT / ".venv" / "bin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


class ContainerError(RuntimeError):
    """A container cannot be started as specified (bad env reference, no command)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names replaced, ``$$`` escapes ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def _resource_value(container: dict[str, Any], resource: str) -> str:
    kind, _, name = resource.partition(".")
    value = container.get("resources", {}).get(kind, {}).get(name)
    if value is None:
        return "0" if kind == "requests" else {"cpu": "8", "memory": "34359738368"}.get(name, "0")
    return str(value)


def environment(
    client: apiclient.ApiClient,
    pod: apiclient.Obj,
    container: dict[str, Any],
    base: Mapping[str, str],
) -> dict[str, str]:
    """The container's environment: ``base``, then envFrom, then env (in order)."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]
            fetch: Any = volumes.config_map_data
        elif "secretRef" in source:
            ref = source["secretRef"]
            fetch = volumes.secret_data
        else:
            raise ContainerError(f"envFrom source {sorted(source)} is not supported")
        try:
            data = fetch(client, namespace, ref["name"])
        except apiclient.ApiError as error:
            if error.status == 404 and ref.get("optional", False):
                continue
            raise
        env.update({prefix + k: v.decode() for k, v in data.items()})
    for variable in container.get("env", []):
        name = variable["name"]
        if "value" in variable or "valueFrom" not in variable:
            env[name] = expand(variable.get("value", ""), env)
            continue
        source = variable["valueFrom"]
        if "fieldRef" in source:
            env[name] = volumes.field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = _resource_value(container, source["resourceFieldRef"]["resource"])
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            is_secret = "secretKeyRef" in source
            ref = source["secretKeyRef" if is_secret else "configMapKeyRef"]
            fetch = volumes.secret_data if is_secret else volumes.config_map_data
            try:
                data = fetch(client, namespace, ref["name"])
            except apiclient.ApiError as error:
                if error.status == 404 and ref.get("optional", False):
                    continue
                raise
            if ref["key"] not in data:
                if ref.get("optional", False):
                    continue
                raise ContainerError(f"env {name}: {ref['name']} has no key {ref['key']!r}")
            env[name] = data[ref["key"]].decode()
        else:
            raise ContainerError(f"env {name}: valueFrom {sorted(source)} is not supported")
    return env


def base_environment(
    pod: apiclient.Obj, cluster_dir: Path, api_host: str, api_port: int, home: Path
) -> dict[str, str]:
    """What every container gets before its own env: PATH, HOME, the in-cluster API."""
    hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
    return {
        "PATH": f"{VENV_BIN}:{SYSTEM_PATH}",
        "HOME": str(home),
        "HOSTNAME": hostname,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "KUBERNETES_SERVICE_HOST": api_host,
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port),
        "KUBERNETES_PORT": f"tcp://{api_host}:{api_port}",
        "LOCALKUBE_CLUSTER": str(cluster_dir),
        "LOCALKUBE_POD_UID": pod["metadata"]["uid"],
    }


def argv(container: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded (there is no image entrypoint)."""
    words = [expand(w, env) for w in container.get("command", []) + container.get("args", [])]
    if not words:
        raise ContainerError(
            f"container {container['name']}: localkube runs no images, so it needs a command"
        )
    return words


def launcher(
    netns: str,
    hostname: str,
    mounts: list[tuple[Path, str, bool]],
    workdir: Path | str,
    command: list[str],
) -> list[str]:
    """The argv that enters the pod's namespaces, mounts the volumes and execs ``command``.

    ``mounts`` holds (host directory, mountPath, read-only). ``ip netns exec`` makes a
    private, slave mount namespace, so the bind mounts never reach the host; the mount
    points themselves are created (empty) on the host's file system if missing.
    """
    lines = ["set -e", 'hostname "$0"']
    for source, target, read_only in sorted(mounts, key=lambda m: m[1].count("/")):
        quoted_source, quoted_target = shlex.quote(str(source)), shlex.quote(target)
        if source.is_dir():
            lines.append(f"mkdir -p {quoted_target}")
        else:
            lines.append(f"mkdir -p $(dirname {quoted_target}); touch {quoted_target}")
        lines.append(f"mount --bind {quoted_source} {quoted_target}")
        if read_only:
            lines.append(f"mount -o remount,bind,ro {quoted_target}")
    lines.append(f"cd {shlex.quote(str(workdir))}")
    lines.append('exec "$@"')
    script = "\n".join(lines)
    return [
        "ip",
        "netns",
        "exec",
        netns,
        "unshare",
        "--uts",
        "--",
        "/bin/sh",
        "-c",
        script,
        hostname,
        *command,
    ]
