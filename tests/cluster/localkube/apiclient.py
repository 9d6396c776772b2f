"""A small typed client for the Kubernetes REST API, over ``http.client``.

The harness needs a dozen verbs on a handful of resources; a 150-line client with
JSON dicts is easier to read (and to type-check) than the generated client. Each
thread keeps its own keep-alive connection. Objects are plain ``dict``s exactly as
the API server sends them.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
"""A Kubernetes object or list, as decoded JSON."""


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        try:
            self.message = str(json.loads(body).get("message", body))
        except ValueError:
            self.message = body
        super().__init__(f"{method} {path}: HTTP {status}: {self.message}")


def is_not_found(error: Exception) -> bool:
    return isinstance(error, ApiError) and error.status == 404


def is_conflict(error: Exception) -> bool:
    return isinstance(error, ApiError) and error.status == 409


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Where the server is and how to authenticate to it (client certificate)."""

    server: str
    """``https://host:port``"""
    ca_cert: Path
    client_cert: Path
    client_key: Path


def resource_path(
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    group_version: str = "v1",
) -> str:
    """The URL path of a resource, e.g. ``/api/v1/namespaces/ns/pods/p/status``."""
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    parts = [prefix]
    if namespace is not None:
        parts.append(f"namespaces/{namespace}")
    parts.append(resource)
    if name is not None:
        parts.append(name)
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


class ApiClient:
    """JSON over HTTPS to one API server; safe to share between threads."""

    def __init__(self, credentials: Credentials, timeout: float = 30.0) -> None:
        self.credentials = credentials
        self.timeout = timeout
        url = urllib.parse.urlsplit(credentials.server)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 443
        self._context = ssl.create_default_context(cafile=str(credentials.ca_cert))
        self._context.load_cert_chain(str(credentials.client_cert), str(credentials.client_key))
        self._local = threading.local()

    def _connection(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=timeout
        )

    def _pooled(self) -> http.client.HTTPSConnection:
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connection(self.timeout)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close this thread's kept-alive connection (other threads' close with them)."""
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def request(
        self,
        method: str,
        path: str,
        body: Obj | list[Obj] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        """Send one request and return the decoded JSON answer; raise :class:`ApiError`."""
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            connection = self._pooled()
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.HTTPException, ConnectionError, TimeoutError, ssl.SSLError):
                # A kept-alive connection the server closed: retry once on a fresh one.
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
                continue
            if response.status >= 400:
                raise ApiError(method, path, response.status, data.decode(errors="replace"))
            if not data:
                return {}
            decoded: Obj = json.loads(data)
            return decoded
        raise AssertionError("unreachable")

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Obj:
        return self.request("GET", path, params=params)

    def get_text(self, path: str) -> str:
        """GET a non-JSON endpoint such as ``/readyz`` or a pod's ``log``."""
        connection = self._connection(self.timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            data = response.read().decode(errors="replace")
        finally:
            connection.close()
        if response.status >= 400:
            raise ApiError("GET", path, response.status, data)
        return data

    def create(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body)

    def replace(self, path: str, body: Obj) -> Obj:
        return self.request("PUT", path, body)

    def merge_patch(self, path: str, patch: Obj) -> Obj:
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path: str, body: Obj | None = None) -> Obj:
        return self.request("DELETE", path, body)

    def items(self, path: str, params: Mapping[str, str] | None = None) -> list[Obj]:
        items: list[Obj] = self.get(path, params).get("items", [])
        return items

    def watch(
        self,
        path: str,
        resource_version: str,
        params: Mapping[str, str] | None = None,
        timeout_seconds: int = 60,
    ) -> Iterator[Obj]:
        """Yield watch events (``{"type", "object"}``) from ``resource_version``.

        Ends when the server closes the watch (after ``timeout_seconds``); raises
        :class:`ApiError` on an error status, including 410 Gone for a stale version.
        """
        query = dict(params or {})
        query.update(
            watch="true",
            resourceVersion=resource_version,
            timeoutSeconds=str(timeout_seconds),
            allowWatchBookmarks="true",
        )
        full = f"{path}?{urllib.parse.urlencode(query)}"
        connection = self._connection(timeout_seconds + 30.0)
        try:
            connection.request("GET", full, headers={"Accept": "application/json"})
            response = connection.getresponse()
            if response.status >= 400:
                raise ApiError("GET", full, response.status, response.read().decode())
            while True:
                line = response.readline()
                if not line:
                    return
                event: Obj = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object", {})
                    raise ApiError("WATCH", path, int(status.get("code", 500)), json.dumps(status))
                yield event
        finally:
            connection.close()
