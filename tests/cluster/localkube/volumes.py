"""Materialising a pod's volumes as local directories.

emptyDir is a directory under the pod's directory; hostPath is the host path;
a persistentVolumeClaim is the hostPath of the PersistentVolume bound to it (see
:mod:`localkube.provisioner`); configMap, secret, downwardAPI and projected
volumes (including the service-account token that the ServiceAccount admission
plugin adds) are files written once when the pod starts (no live updates).
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

from localkube import apiclient

TOKEN_SECONDS = 3607


class VolumeError(RuntimeError):
    """A volume cannot be set up (missing object, unsupported type)."""


def _write(directory: Path, relative: str, data: bytes, mode: int | None) -> None:
    target = directory / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(0o644 if mode is None else mode)


def field_value(pod: apiclient.Obj, path: str) -> str:
    """The value of a downward-API ``fieldPath`` such as ``metadata.name``."""
    metadata: dict[str, Any] = pod["metadata"]
    status: dict[str, Any] = pod.get("status", {})
    spec: dict[str, Any] = pod["spec"]
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIPs": status.get("podIP", ""),
        "status.hostIPs": status.get("hostIP", ""),
    }
    if path in simple:
        return str(simple[path])
    for prefix, mapping in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        values: dict[str, str] = metadata.get(mapping, {})
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        if path.startswith(prefix + "['") and path.endswith("']"):
            return values.get(path[len(prefix) + 2 : -2], "")
    raise VolumeError(f"downward API fieldPath {path!r} is not supported by localkube")


def _key_items(
    data: dict[str, bytes], items: list[dict[str, Any]] | None, what: str, optional: bool
) -> list[tuple[str, bytes, int | None]]:
    if items is None:
        return [(key, value, None) for key, value in data.items()]
    chosen = []
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise VolumeError(f"{what} has no key {item['key']!r}")
        chosen.append((item["path"], data[item["key"]], item.get("mode")))
    return chosen


def config_map_data(client: apiclient.ApiClient, namespace: str, name: str) -> dict[str, bytes]:
    obj = client.get(apiclient.resource_path("configmaps", namespace, name))
    data = {k: v.encode() for k, v in obj.get("data", {}).items()}
    data.update({k: base64.b64decode(v) for k, v in obj.get("binaryData", {}).items()})
    return data


def secret_data(client: apiclient.ApiClient, namespace: str, name: str) -> dict[str, bytes]:
    obj = client.get(apiclient.resource_path("secrets", namespace, name))
    return {k: base64.b64decode(v) for k, v in obj.get("data", {}).items()}


def _optional_get(
    fetch: Any, client: apiclient.ApiClient, namespace: str, name: str, optional: bool
) -> dict[str, bytes] | None:
    try:
        data: dict[str, bytes] = fetch(client, namespace, name)
        return data
    except apiclient.ApiError as error:
        if error.status == 404 and optional:
            return None
        raise


def service_account_token(
    client: apiclient.ApiClient, pod: apiclient.Obj, audience: str | None, seconds: int
) -> bytes:
    """A bound service-account token for the pod, from the TokenRequest API."""
    metadata = pod["metadata"]
    account = pod["spec"].get("serviceAccountName") or "default"
    spec: dict[str, Any] = {
        "expirationSeconds": seconds,
        "boundObjectRef": {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": metadata["name"],
            "uid": metadata["uid"],
        },
    }
    if audience:
        spec["audiences"] = [audience]
    answer = client.create(
        apiclient.resource_path("serviceaccounts", metadata["namespace"], account, "token"),
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    return str(answer["status"]["token"]).encode()


def _projected(
    client: apiclient.ApiClient, pod: apiclient.Obj, source: dict[str, Any], directory: Path
) -> None:
    namespace = pod["metadata"]["namespace"]
    default_mode = source.get("defaultMode")
    for part in source.get("sources", []):
        if "serviceAccountToken" in part:
            token = part["serviceAccountToken"]
            seconds = int(token.get("expirationSeconds", TOKEN_SECONDS))
            data = service_account_token(client, pod, token.get("audience"), seconds)
            _write(directory, token["path"], data, default_mode)
        elif "configMap" in part:
            ref = part["configMap"]
            optional = bool(ref.get("optional", False))
            values = _optional_get(config_map_data, client, namespace, ref["name"], optional)
            for relative, data, mode in _key_items(
                values or {}, ref.get("items"), ref["name"], optional
            ):
                _write(directory, relative, data, mode or default_mode)
        elif "secret" in part:
            ref = part["secret"]
            optional = bool(ref.get("optional", False))
            values = _optional_get(secret_data, client, namespace, ref["name"], optional)
            for relative, data, mode in _key_items(
                values or {}, ref.get("items"), ref["name"], optional
            ):
                _write(directory, relative, data, mode or default_mode)
        elif "downwardAPI" in part:
            _downward(pod, part["downwardAPI"], directory)
        else:
            raise VolumeError(f"projected source {sorted(part)} is not supported by localkube")


def _downward(pod: apiclient.Obj, source: dict[str, Any], directory: Path) -> None:
    for item in source.get("items", []):
        if "fieldRef" not in item:
            raise VolumeError("downwardAPI resourceFieldRef is not supported by localkube")
        value = field_value(pod, item["fieldRef"]["fieldPath"])
        _write(directory, item["path"], value.encode(), item.get("mode"))


def materialise(
    client: apiclient.ApiClient,
    pod: apiclient.Obj,
    volume: dict[str, Any],
    pod_dir: Path,
    claim_path: Any,
) -> Path:
    """Create one volume; return the host directory that backs it.

    ``claim_path(namespace, claim)`` returns the directory of a bound claim.
    """
    name = str(volume["name"])
    namespace = str(pod["metadata"]["namespace"])
    local: Path = pod_dir / "volumes" / name
    if "emptyDir" in volume:
        local.mkdir(parents=True, exist_ok=True)
        return local
    if "hostPath" in volume:
        host = Path(volume["hostPath"]["path"])
        kind = volume["hostPath"].get("type", "")
        if kind in ("", "DirectoryOrCreate") and not host.exists():
            host.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate" and not host.exists():
            host.parent.mkdir(parents=True, exist_ok=True)
            host.touch()
        elif not host.exists():
            raise VolumeError(f"volume {name}: hostPath {host} does not exist")
        return host
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"]["claimName"]
        backing: Path = claim_path(namespace, claim)
        return backing
    if "configMap" in volume:
        ref = volume["configMap"]
        optional = bool(ref.get("optional", False))
        values = _optional_get(config_map_data, client, namespace, ref["name"], optional)
        _fresh(local)
        for relative, data, mode in _key_items(
            values or {}, ref.get("items"), ref["name"], optional
        ):
            _write(local, relative, data, mode or ref.get("defaultMode"))
        return local
    if "secret" in volume:
        ref = volume["secret"]
        optional = bool(ref.get("optional", False))
        values = _optional_get(secret_data, client, namespace, ref["secretName"], optional)
        _fresh(local)
        for relative, data, mode in _key_items(
            values or {}, ref.get("items"), ref["secretName"], optional
        ):
            _write(local, relative, data, mode or ref.get("defaultMode"))
        return local
    if "projected" in volume:
        _fresh(local)
        _projected(client, pod, volume["projected"], local)
        return local
    if "downwardAPI" in volume:
        _fresh(local)
        _downward(pod, volume["downwardAPI"], local)
        return local
    kinds = sorted(set(volume) - {"name"})
    raise VolumeError(f"volume {name}: type {kinds} is not supported by localkube")


def _fresh(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    os.chmod(directory, 0o755)
