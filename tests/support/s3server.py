"""A real S3-compatible server for the tests and benchmarks: MinIO, built from its Go
module, running as a local process on a free loopback port.

``python tests/support/s3server.py build`` (``make s3-server``, a prerequisite of
``make test``) builds ``.cache/bin/minio`` with ``go install`` through the Go module
proxy, unless the binary of the pinned version is already there. Tests that need the
server skip, saying how to build it, when the binary is missing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = ROOT / ".cache" / "bin"
MINIO = BIN_DIR / "minio"
STAMP = BIN_DIR / "minio.version"
MODULE = "github.com/minio/minio"
VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
"""The pinned MinIO module version (the module's last commit, 2026-02-12; MinIO tags
releases as ``RELEASE.*``, which Go sees as pseudo-versions)."""
BUILD_DEADLINE = 3600.0
"""Seconds a cold ``go install`` of MinIO may take (measured: see docs/storage.md)."""
READY_DEADLINE = 60.0
"""Seconds the server may take to answer its readiness probe."""
STOP_GRACE = 10.0
"""Seconds between SIGTERM and SIGKILL when stopping the server."""
SKIP_REASON = f"no MinIO binary at {MINIO}: run `make s3-server` (builds it from its Go module)"


def built() -> bool:
    """Whether the pinned MinIO binary is in place."""
    return MINIO.exists() and STAMP.exists() and STAMP.read_text().strip() == VERSION


def build() -> float:
    """Build the pinned MinIO into ``.cache/bin`` unless it is there; return seconds taken."""
    if built():
        return 0.0
    go = shutil.which("go")
    if go is None:
        raise SystemExit("building MinIO needs the Go toolchain (`go` on PATH)")
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = {**os.environ, "GOBIN": str(BIN_DIR), "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    subprocess.run(
        [go, "install", "-trimpath", f"{MODULE}@{VERSION}"],
        env=env,
        check=True,
        timeout=BUILD_DEADLINE,
    )
    STAMP.write_text(VERSION + "\n")
    return time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MinioServer:
    """One MinIO process with its own data directory; a context manager.

    ``endpoint``, ``access_key`` and ``secret_key`` are what clients need;
    :meth:`client_env` gives them as the standard AWS environment variables.
    """

    def __init__(self, data_dir: Path | None = None, host: str = "127.0.0.1") -> None:
        self.owned_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="kubemr-minio-"))
        self.host = host
        """Address it listens on (the cluster tests use the pods' gateway)."""
        self.port = _free_port()
        self.endpoint = f"http://{host}:{self.port}"
        self.access_key = "kubemr-test"
        self.secret_key = secrets.token_hex(16)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self) -> MinioServer:
        if not built():
            raise RuntimeError(SKIP_REASON)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        console = _free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(MINIO),
                    "server",
                    str(self.data_dir / "data"),
                    "--address",
                    f"{self.host}:{self.port}",
                    "--console-address",
                    f"127.0.0.1:{console}",
                    "--quiet",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_DEADLINE
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"minio exited with {self.process.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(
                    f"{self.endpoint}/minio/health/ready", timeout=1
                ) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"minio not ready after {READY_DEADLINE}s: {self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def client(self) -> Any:
        """A boto3 S3 client with the root credentials (path-style, as MinIO wants)."""
        import boto3  # noqa: PLC0415 (the build command needs no boto3)
        from botocore.config import Config  # noqa: PLC0415

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def client_env(self) -> dict[str, str]:
        """The AWS chain's environment variables for this server's root credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> MinioServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def committed_lines(client: Any, bucket: str, prefix: str) -> list[str]:
    """The lines of the part files a job committed under ``prefix`` (``out/``), once it is
    seen to have committed: ``_SUCCESS`` there and nothing under ``_temporary`` left."""
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    assert f"{prefix}_SUCCESS" in keys and not [k for k in keys if "_temporary" in k], keys
    lines: list[str] = []
    for key in sorted(k for k in keys if "/part-" in k):
        lines += client.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["build", "path"])
    args = parser.parse_args()
    if args.command == "path":
        print(MINIO)
        return
    seconds = build()
    if seconds:
        print(f"built {MINIO} ({MODULE}@{VERSION}) in {seconds:.0f}s")
    else:
        print(f"{MINIO} ({VERSION}) is up to date")


if __name__ == "__main__":
    sys.exit(main())
