"""Where a job's bytes live: one small interface over local files and S3 objects.

A path is a string: ``s3://bucket/key`` names an object (or, ending in ``/``, a prefix),
anything else a local file. :func:`store_for` picks the :class:`Store`; the runtime reads
input splits, writes reduce output, commits it and keeps the master's journal through
that interface only, so local disks, shared volumes and S3 behave alike.

S3 goes through boto3, with credentials from the standard AWS chain (environment, IRSA
web identity token, instance profile) and ``spec.storage`` for the endpoint (MinIO,
Ceph), region and addressing style. Reading is by ranged GETs of byte ranges, never a
whole-object download; writing is a multipart upload that only becomes an object when it
completes; S3 has no rename, so :meth:`Store.replace` is a server-side copy and a delete.

Errors are :class:`StoreError`, naming the path or URI and saying what is wrong (no such
bucket, no such key, access denied, credentials rejected, endpoint unreachable).
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import io
import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kubemr.spec import StorageSpec

SCHEME = "s3://"
PART_BYTES = 8 * 2**20
"""Bytes per part of a multipart upload (S3's minimum is 5 MiB); it grows by 8 MiB every
1000 parts, so the 10 000-part limit is never reached below 400 GiB."""
SLACK = 64 * 2**10
"""Bytes the first ranged GET of a split asks for beyond the split's end, so that a line
crossing the end is usually finished by the same request."""
READ_AHEAD = 8 * 2**20
"""Bytes each further ranged GET asks for (a line longer than the slack)."""
DRAIN = 256 * 2**10
"""A request closed with at most this many bytes unread is read to its end, so that its
connection goes back to the pool instead of being dropped."""
_MAGIC = frozenset("*?[")


class StoreError(OSError):
    """A path or URI that cannot be read or written; the message names it."""


@dataclass(frozen=True)
class Entry:
    """One name directly inside a directory (or an S3 prefix)."""

    name: str
    path: str
    size: int
    is_dir: bool


def is_s3(path: str) -> bool:
    return path.startswith(SCHEME)


def has_magic(path: str) -> bool:
    return any(c in _MAGIC for c in path)


def join(base: str, *names: str) -> str:
    """``base/name/...`` for local paths and URIs alike."""
    return "/".join([base.rstrip("/"), *names])


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class Store(ABC):
    """The operations the runtime needs from where its input and output live."""

    @abstractmethod
    def size(self, path: str) -> int | None:
        """Bytes of the file or object at ``path``; None if there is none."""

    @abstractmethod
    def listdir(self, path: str) -> list[Entry]:
        """What is directly inside the directory (prefix) ``path``; empty if nothing."""

    @abstractmethod
    def glob(self, pattern: str) -> list[tuple[str, int]]:
        """(path, size) of every file matching ``pattern`` (``*``, ``?``, ``[...]``; a
        wildcard never matches ``/``), sorted."""

    @abstractmethod
    def open_range(self, path: str, start: int, end: int) -> Reader:
        """A reader positioned at ``start``; it expects to read up to about ``end``
        (reading on is allowed: a line may cross the end)."""

    @abstractmethod
    def open_write(self, path: str) -> BinaryIO:
        """A binary writer; the file or object is complete once closed without error."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` so that readers see all of it or nothing."""

    @abstractmethod
    def replace(self, source: str, target: str) -> None:
        """Make ``source`` visible as ``target`` whole (rename, or copy then delete)."""

    @abstractmethod
    def remove(self, path: str) -> None:
        """Remove one file or object; missing is fine."""

    @abstractmethod
    def remove_tree(self, path: str) -> None:
        """Remove a directory (prefix) and everything under it; missing is fine."""

    def exists(self, path: str) -> bool:
        return self.size(path) is not None

    def is_dir(self, path: str) -> bool:
        return bool(self.listdir(path))


class Reader(ABC):
    """Sequential reads from a position, with seeks; a context manager."""

    @abstractmethod
    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; empty at the end."""

    @abstractmethod
    def seek(self, position: int) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Release the file or connection."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- local files ---------------------------------------------------------------------


class _FileReader(Reader):
    def __init__(self, path: str, start: int) -> None:
        self.stream = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        self.stream.seek(start)

    def read(self, size: int) -> bytes:
        return self.stream.read(size) or b""

    def seek(self, position: int) -> None:
        self.stream.seek(position)

    def close(self) -> None:
        self.stream.close()


class LocalStore(Store):
    """Files on a local disk or a mounted volume."""

    def size(self, path: str) -> int | None:
        try:
            return os.path.getsize(path) if os.path.isfile(path) else None
        except OSError:
            return None

    def listdir(self, path: str) -> list[Entry]:
        try:
            names = sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []
        entries = []
        for name in names:
            full = os.path.join(path, name)
            is_dir = os.path.isdir(full)
            entries.append(Entry(name, full, 0 if is_dir else os.path.getsize(full), is_dir))
        return entries

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def glob(self, pattern: str) -> list[tuple[str, int]]:
        import glob  # noqa: PLC0415

        return [(p, os.path.getsize(p)) for p in sorted(glob.glob(pattern)) if os.path.isfile(p)]

    def open_range(self, path: str, start: int, end: int) -> Reader:
        try:
            return _FileReader(path, start)
        except OSError as exc:
            raise StoreError(f"cannot read {path!r}: {exc.strerror}") from exc

    def open_write(self, path: str) -> BinaryIO:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "wb")

    def read_bytes(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write_bytes(self, path: str, data: bytes) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def replace(self, source: str, target: str) -> None:
        os.replace(source, target)

    def remove(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def remove_tree(self, path: str) -> None:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            Path(path).unlink(missing_ok=True)


# ---- S3 ------------------------------------------------------------------------------


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); raises StoreError on a URI without a bucket."""
    bucket, _, key = uri.removeprefix(SCHEME).partition("/")
    if not bucket:
        raise StoreError(f"{uri!r} names no bucket (expected s3://bucket/key)")
    return bucket, key


def _uri(bucket: str, key: str) -> str:
    return f"{SCHEME}{bucket}/{key}"


class S3Store(Store):
    """Objects in S3 or an S3-compatible store, through one boto3 client (thread-safe)."""

    def __init__(self, storage: StorageSpec) -> None:
        import boto3  # noqa: PLC0415 (only jobs that use S3 pay for importing boto3)
        from botocore.config import Config  # noqa: PLC0415

        path_style = storage.path_style
        if path_style is None:
            path_style = storage.endpoint is not None
        config = Config(
            s3={"addressing_style": "path" if path_style else "auto"},
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=32,
        )
        self.storage = storage
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=storage.endpoint, region_name=storage.region, config=config
        )
        self.endpoint = storage.endpoint or self.client.meta.endpoint_url
        self._buckets: set[str] = set()

    # errors ------------------------------------------------------------------------

    def error(self, uri: str, exc: Exception, doing: str = "access") -> StoreError:
        """A StoreError naming ``uri`` and saying what went wrong, for a botocore error."""
        from botocore import exceptions  # noqa: PLC0415

        if isinstance(exc, exceptions.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            bucket = uri.removeprefix(SCHEME).split("/", 1)[0]
            if code == "NoSuchBucket":
                reason = f"bucket {bucket!r} does not exist"
            elif code in ("NoSuchKey", "404", "NotFound"):
                reason = "no such key"
            elif code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
                reason = "access denied (check the credentials' permissions and bucket policy)"
            elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"):
                reason = f"credentials rejected ({code})"
            else:
                reason = f"{code or status}: {exc}"
            return StoreError(f"cannot {doing} {uri!r}: {reason}")
        if isinstance(exc, exceptions.NoCredentialsError):
            return StoreError(
                f"cannot {doing} {uri!r}: no AWS credentials found (environment, web "
                "identity token, shared config, instance profile)"
            )
        if isinstance(
            exc,
            exceptions.EndpointConnectionError
            | exceptions.ConnectTimeoutError
            | exceptions.ReadTimeoutError,
        ):
            return StoreError(
                f"cannot {doing} {uri!r}: the S3 endpoint {self.endpoint} is unreachable ({exc})"
            )
        return StoreError(f"cannot {doing} {uri!r}: {exc}")

    def _call(self, uri: str, doing: str, method: str, **kwargs: Any) -> Any:
        from botocore import exceptions  # noqa: PLC0415

        try:
            return getattr(self.client, method)(**kwargs)
        except (exceptions.BotoCoreError, exceptions.ClientError) as exc:
            raise self.error(uri, exc, doing) from exc

    def check_bucket(self, uri: str) -> None:
        """Raise a StoreError naming ``uri`` unless its bucket exists and is reachable."""
        bucket, _ = split_uri(uri)
        if bucket in self._buckets:
            return
        from botocore import exceptions  # noqa: PLC0415

        try:
            self.client.head_bucket(Bucket=bucket)
        except exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                missing = f"cannot access {uri!r}: bucket {bucket!r} does not exist"
                raise StoreError(missing) from exc
            # A HEAD reply has no body, so no error code: a listing says why (access
            # denied, or credentials rejected), or succeeds where HEAD is not allowed.
            try:
                self.client.list_objects_v2(Bucket=bucket, MaxKeys=1)
            except (exceptions.BotoCoreError, exceptions.ClientError) as listing:
                raise self.error(uri, listing) from listing
        except exceptions.BotoCoreError as exc:
            raise self.error(uri, exc) from exc
        self._buckets.add(bucket)

    # queries -----------------------------------------------------------------------

    def size(self, path: str) -> int | None:
        from botocore import exceptions  # noqa: PLC0415

        bucket, key = split_uri(path)
        self.check_bucket(path)
        if not key or key.endswith("/"):
            return None
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except exceptions.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self.error(path, exc) from exc
        except exceptions.BotoCoreError as exc:
            raise self.error(path, exc) from exc
        return int(head["ContentLength"])

    def _objects(self, uri: str, prefix: str, delimiter: str | None) -> list[Entry]:
        bucket, _ = split_uri(uri)
        self.check_bucket(uri)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        entries: list[Entry] = []
        from botocore import exceptions  # noqa: PLC0415

        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                for common in page.get("CommonPrefixes", []):
                    key = common["Prefix"]
                    name = key[len(prefix) :].rstrip("/")
                    entries.append(Entry(name, _uri(bucket, key.rstrip("/")), 0, True))
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # a "folder" placeholder object
                    name = key[len(prefix) :]
                    entries.append(Entry(name, _uri(bucket, key), int(obj["Size"]), False))
        except (exceptions.BotoCoreError, exceptions.ClientError) as exc:
            raise self.error(uri, exc, "list") from exc
        return sorted(entries, key=lambda e: e.name)

    def listdir(self, path: str) -> list[Entry]:
        _, key = split_uri(path)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        return self._objects(path, prefix, "/")

    def glob(self, pattern: str) -> list[tuple[str, int]]:
        bucket, key = split_uri(pattern)
        first = min((key.index(c) for c in _MAGIC if c in key), default=len(key))
        prefix = key[: key.rfind("/", 0, first) + 1]
        parts = key.split("/")
        found = []
        for entry in self._objects(pattern, prefix, None):
            candidate = entry.path.removeprefix(_uri(bucket, "")).split("/")
            if len(candidate) == len(parts) and all(
                fnmatch.fnmatchcase(c, p) for c, p in zip(candidate, parts, strict=True)
            ):
                found.append((entry.path, entry.size))
        return sorted(found)

    # reading and writing -----------------------------------------------------------

    def open_range(self, path: str, start: int, end: int) -> Reader:
        return _RangeReader(self, path, start, end)

    def open_write(self, path: str) -> BinaryIO:
        raw = _MultipartWriter(self, path)
        return io.BufferedWriter(raw, buffer_size=2**20)

    def read_bytes(self, path: str) -> bytes:
        bucket, key = split_uri(path)
        reply = self._call(path, "read", "get_object", Bucket=bucket, Key=key)
        data: bytes = reply["Body"].read()
        return data

    def write_bytes(self, path: str, data: bytes) -> None:
        bucket, key = split_uri(path)
        self._call(path, "write", "put_object", Bucket=bucket, Key=key, Body=data)

    def replace(self, source: str, target: str) -> None:
        """Server-side copy (a multipart copy for large objects), then delete the
        source: ``target`` appears whole or not at all."""
        from botocore import exceptions  # noqa: PLC0415

        source_bucket, source_key = split_uri(source)
        bucket, key = split_uri(target)
        try:
            self.client.copy({"Bucket": source_bucket, "Key": source_key}, bucket, key)
        except (exceptions.BotoCoreError, exceptions.ClientError) as exc:
            raise self.error(source, exc, f"copy to {target!r}") from exc
        self.remove(source)

    def remove(self, path: str) -> None:
        bucket, key = split_uri(path)
        self._call(path, "delete", "delete_object", Bucket=bucket, Key=key)

    def remove_tree(self, path: str) -> None:
        """Delete every object under the prefix and abort its unfinished uploads."""
        bucket, key = split_uri(path)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        keys = [e.path.removeprefix(_uri(bucket, "")) for e in self._objects(path, prefix, None)]
        if not key.endswith("/") and key and self.size(path) is not None:
            keys.append(key)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self._call(
                path,
                "delete",
                "delete_objects",
                Bucket=bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
        self.abort_uploads(path)

    def abort_uploads(self, path: str) -> int:
        """Abort unfinished multipart uploads under the prefix ``path`` (attempts killed
        mid-upload, a master killed mid-copy); returns how many.

        The bucket's uploads are listed whole and filtered here: MinIO lists uploads
        only for an exact key or for no prefix at all, where AWS takes any prefix.
        """
        bucket, key = split_uri(path)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        aborted = 0
        from botocore import exceptions  # noqa: PLC0415

        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket)
            for page in pages:
                for upload in page.get("Uploads", []):
                    if not upload["Key"].startswith(prefix):
                        continue
                    with contextlib.suppress(exceptions.ClientError):  # gone meanwhile
                        self.client.abort_multipart_upload(
                            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        except exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NotImplemented":
                raise self.error(path, exc, "abort the unfinished uploads under") from exc
        except exceptions.BotoCoreError as exc:
            raise self.error(path, exc, "abort the unfinished uploads under") from exc
        return aborted


class _RangeReader(Reader):
    """Reads an object with ranged GETs: one request streams ``[position, end +
    SLACK)``; reading past it (a line crossing the split's end further than that) starts
    another request of ``READ_AHEAD`` bytes, and so does a seek. A split costs one
    request, plus one per ``READ_AHEAD`` of a long line crossing its end."""

    def __init__(self, store: S3Store, uri: str, start: int, end: int) -> None:
        self.store = store
        self.uri = uri
        self.bucket, self.key = split_uri(uri)
        self.position = start
        self.end = end
        self.body: Any = None
        self.body_end = start
        """Exclusive end of the open request's range."""
        self.total: int | None = None
        """The object's size, once a reply said it."""
        self.requests = 0

    def _open(self, size: int) -> bool:
        """Start a request at the position; False at the object's end."""
        self.close()
        if self.total is not None and self.position >= self.total:
            return False
        if self.position < self.end:
            last = max(self.end + SLACK, self.position + size) - 1
        else:
            last = self.position + max(size, READ_AHEAD) - 1
        from botocore import exceptions  # noqa: PLC0415

        try:
            reply = self.store.client.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={self.position}-{last}"
            )
        except exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                self.total = self.position  # at or past the end of the object
                return False
            raise self.store.error(self.uri, exc, "read") from exc
        except exceptions.BotoCoreError as exc:
            raise self.store.error(self.uri, exc, "read") from exc
        self.requests += 1
        self.body = reply["Body"]
        self.body_end = self.position + int(reply["ContentLength"])
        content_range = str(reply.get("ContentRange", ""))  # "bytes 0-99/1234"
        if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
            self.total = int(content_range.rsplit("/", 1)[1])
        return self.body_end > self.position

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes, like a raw file: short at the end of the open request's
        range (a new request starts only when nothing is left to return)."""
        chunks: list[bytes] = []
        wanted = size
        while wanted > 0:
            exhausted = self.body is None or self.position >= self.body_end
            if exhausted and (chunks or not self._open(wanted)):
                break
            chunk = self.body.read(min(wanted, self.body_end - self.position))
            if not chunk:
                raise StoreError(f"cannot read {self.uri!r}: the connection ended early")
            chunks.append(chunk)
            self.position += len(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def seek(self, position: int) -> None:
        if position != self.position:
            self.close()
            self.position = position

    def close(self) -> None:
        if self.body is not None:
            if self.body_end - self.position <= DRAIN:
                with contextlib.suppress(Exception):  # only to reuse the connection
                    self.body.read()
            self.body.close()
            self.body = None
        self.body_end = self.position


class _MultipartWriter(io.RawIOBase):
    """Writes an object as a multipart upload. Until :meth:`close` completes it, nothing
    is visible at the key; a writer that fails aborts its upload, and one whose process
    dies leaves an unfinished upload (invisible) that the job's cleanup aborts."""

    def __init__(self, store: S3Store, uri: str) -> None:
        super().__init__()
        self.store = store
        self.uri = uri
        self.bucket, self.key = split_uri(uri)
        self.buffer = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.upload_id: str | None = None
        self.written = 0
        self.failed = False

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.written

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.buffer += view
        self.written += len(view)
        try:
            while len(self.buffer) >= self._part_size():
                part = bytes(self.buffer[: self._part_size()])
                del self.buffer[: len(part)]
                self._upload(part)
        except BaseException:
            self._abort()
            raise
        return len(view)

    def _part_size(self) -> int:
        return PART_BYTES * (1 + len(self.parts) // 1000)

    def _upload(self, part: bytes) -> None:
        if self.upload_id is None:
            reply = self.store._call(
                self.uri, "write", "create_multipart_upload", Bucket=self.bucket, Key=self.key
            )
            self.upload_id = str(reply["UploadId"])
        number = len(self.parts) + 1
        reply = self.store._call(
            self.uri,
            "write",
            "upload_part",
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=part,
        )
        self.parts.append({"PartNumber": number, "ETag": reply["ETag"]})

    def _abort(self) -> None:
        self.failed = True
        if self.upload_id is not None:
            from botocore import exceptions  # noqa: PLC0415

            # if this fails, the job's cleanup aborts what is left
            with contextlib.suppress(exceptions.BotoCoreError, exceptions.ClientError):
                self.store.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )
            self.upload_id = None

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self.failed:
                self._complete()
        except BaseException:
            self._abort()
            raise
        finally:
            super().close()

    def _complete(self) -> None:
        if self.upload_id is None:  # small: one PUT
            self.store.write_bytes(self.uri, bytes(self.buffer))
            return
        if self.buffer:
            self._upload(bytes(self.buffer))
        self.buffer.clear()
        self.store._call(
            self.uri,
            "write",
            "complete_multipart_upload",
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )


_LOCAL = LocalStore()


@functools.lru_cache(maxsize=8)
def _s3(storage: StorageSpec) -> S3Store:
    return S3Store(storage)


def store_for(path: str, storage: StorageSpec | None = None) -> Store:
    """The store that holds ``path``: S3 for ``s3://`` URIs (one client per process and
    storage settings), else the local filesystem."""
    if is_s3(path):
        return _s3(storage or StorageSpec())
    return _LOCAL
