"""List-and-watch caches of API objects, as client-go's informers keep them.

An :class:`Informer` lists a resource once, then watches it from the list's
resourceVersion, keeps every object in a dict keyed by ``namespace/name`` and calls
a handler after each change. A stale watch (410 Gone) or a dropped connection
leads to a fresh list.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from localkube import apiclient

log = logging.getLogger(__name__)

Handler = Callable[[str, apiclient.Obj], None]
"""Called with the event type (ADDED, MODIFIED, DELETED, SYNC) and the object."""


def key_of(obj: apiclient.Obj) -> str:
    metadata = obj.get("metadata", {})
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


class Informer:
    """A background list-and-watch of one resource path."""

    def __init__(
        self,
        client: apiclient.ApiClient,
        path: str,
        handler: Handler,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.params = dict(params or {})
        self.handler = handler
        self.synced = threading.Event()
        self._objects: dict[str, apiclient.Obj] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer {path}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def objects(self) -> list[apiclient.Obj]:
        with self._lock:
            return list(self._objects.values())

    def get(self, key: str) -> apiclient.Obj | None:
        with self._lock:
            return self._objects.get(key)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._list_and_watch()
            except Exception as error:
                log.warning("informer %s: %s; relisting", self.path, error)
                self._stopped.wait(1.0)

    def _list_and_watch(self) -> None:
        listing = self.client.get(self.path, self.params)
        fresh = {key_of(obj): obj for obj in listing.get("items", [])}
        with self._lock:
            gone = [obj for key, obj in self._objects.items() if key not in fresh]
            self._objects = fresh
        for old in gone:
            self.handler("DELETED", old)
        for current in fresh.values():
            self.handler("SYNC", current)
        self.synced.set()
        version = str(listing["metadata"]["resourceVersion"])
        while not self._stopped.is_set():
            for event in self.client.watch(self.path, version, self.params, timeout_seconds=30):
                kind = str(event["type"])
                obj: apiclient.Obj = event["object"]
                version = str(obj["metadata"]["resourceVersion"])
                if kind == "BOOKMARK":
                    continue
                with self._lock:
                    if kind == "DELETED":
                        self._objects.pop(key_of(obj), None)
                    else:
                        self._objects[key_of(obj)] = obj
                self.handler(kind, obj)
                if self._stopped.is_set():
                    return
