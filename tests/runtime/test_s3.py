"""s3:// input and output against a real S3-compatible server (MinIO, built from its Go
module by `make s3-server`; tests/support/s3server.py).

Ranged reads give exactly the lines local reads give; globs and prefixes expand like
local globs and directories; word count from S3 to S3 equals the sequential oracle over
the same files on local disk; a reducer killed mid-upload leaves no visible part object
and the job still succeeds; and every way of not reaching the data fails before any
process starts, naming the URI.
"""

from __future__ import annotations

import gzip
import json
import random
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard
from kubemr import inputs, plan, spec, stores
from kubemr.launcher import Launcher
from kubemr.proto import mapreduce_pb2 as pb
from kubemr.splits import plan_splits

import s3server
from testjobs import APPS, BOOKS, ROOT, manifest, run_cli, write_manifest

Oracle = Callable[[dict[str, Any]], list[str]]


@pytest.fixture(scope="module")
def minio() -> Iterator[s3server.MinioServer]:
    if not s3server.built():
        pytest.skip(s3server.SKIP_REASON)
    with s3server.MinioServer() as server:
        yield server


class Bucket:
    """A fresh bucket on the test server, and what the tests ask of it."""

    def __init__(self, server: s3server.MinioServer) -> None:
        self.server = server
        self.name = f"t-{uuid.uuid4().hex[:12]}"
        self.client = server.client()
        self.client.create_bucket(Bucket=self.name)

    @property
    def storage(self) -> dict[str, str]:
        """The manifest's ``spec.storage`` for this server."""
        return {"endpoint": self.server.endpoint}

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return self.uri(key)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def uploads(self, prefix: str = "") -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted (listed
        for the whole bucket: MinIO takes no prefix but an exact key)."""
        reply = self.client.list_multipart_uploads(Bucket=self.name)
        return sorted(u["Key"] for u in reply.get("Uploads", []) if u["Key"].startswith(prefix))

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return body

    def sorted_output(self, prefix: str) -> list[str]:
        lines: list[str] = []
        for key in self.keys(f"{prefix}/part-"):
            lines.extend(self.read(key).decode("utf-8", "surrogateescape").splitlines())
        return sorted(lines)


@pytest.fixture
def bucket(minio: s3server.MinioServer, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A fresh bucket; this process and the `kubemr` processes it starts get the server's
    credentials through the standard AWS environment variables."""
    for name, value in minio.client_env().items():
        monkeypatch.setenv(name, value)
    return Bucket(minio)


def storage_of(bucket: Bucket) -> spec.StorageSpec:
    return spec.StorageSpec.model_validate(bucket.storage)


# ---- reading -------------------------------------------------------------------------

SAMPLES = {
    "lf.txt": b"".join(f"line {i} {'x' * (i % 13)}\n".encode() for i in range(40)),
    "crlf.txt": b"".join(f"crlf {i}\r\n".encode() for i in range(30)),
    "no-final-newline.txt": b"a\nbb\nccc\n\n\ndddd",
    "long-line.txt": b"short\n" + b"L" * 70_000 + b"\nafter\n",
    "one-byte.txt": b"x",
}


MAX_SPLITS = 200
"""Splits read per sample and split size (two GETs each): tiny splits of small files only."""


@pytest.mark.parametrize("split_size", [1, 7, 64, 1000, 65_536, 10**6])
def test_ranged_reads_give_the_lines_local_reads_give(
    tmp_path: Path, bucket: Bucket, split_size: int
) -> None:
    storage = storage_of(bucket)
    store = stores.store_for(bucket.uri("x"), storage)
    assert isinstance(store, stores.S3Store)
    ranges: list[str | None] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        ranges.append(params.get("Range"))

    store.client.meta.events.register("before-parameter-build.s3.GetObject", record)
    try:
        for name, data in SAMPLES.items():
            if len(data) // split_size > MAX_SPLITS:
                continue
            local = tmp_path / name
            local.write_bytes(data)
            remote = bucket.put(f"in/{name}", data)
            local_splits = plan_splits([(str(local), len(data))], split_size)
            remote_splits = plan_splits([(remote, len(data))], split_size)
            for here, there in zip(local_splits, remote_splits, strict=True):
                ranges.clear()
                expected = list(inputs.read_blocks(here))
                got = list(inputs.read_blocks(there, storage=storage))
                assert b"".join(got) == b"".join(expected), (name, here)
                assert all(r is not None and r.startswith("bytes=") for r in ranges)
                assert len(ranges) <= 2 + len(data) // stores.READ_AHEAD, (name, ranges)
            lines = [line for s in remote_splits for line in inputs.read_lines(s, storage=storage)]
            assert lines == inputs.lines_of_block(data), name
    finally:
        store.client.meta.events.unregister("before-parameter-build.s3.GetObject", record)


def test_globs_and_prefixes_expand_like_local_globs_and_directories(bucket: Bucket) -> None:
    for key in ("in/a.txt", "in/b.txt", "in/c.log", "in/_hidden", "in/.dot", "in/sub/d.txt"):
        bucket.put(key, b"word\n")
    storage = storage_of(bucket)
    assert inputs.resolve_inputs([bucket.uri("in/*.txt")], storage) == [
        (bucket.uri("in/a.txt"), 5),
        (bucket.uri("in/b.txt"), 5),
    ]
    expected = [(bucket.uri(k), 5) for k in ("in/a.txt", "in/b.txt", "in/c.log")]
    assert inputs.resolve_inputs([bucket.uri("in/")], storage) == expected
    assert inputs.resolve_inputs([bucket.uri("in")], storage) == expected
    assert inputs.resolve_inputs([bucket.uri("in/*/*.txt")], storage) == [
        (bucket.uri("in/sub/d.txt"), 5)
    ]
    assert inputs.resolve_inputs([bucket.uri("in/?.t[x]t"), bucket.uri("in/a.txt")], storage) == [
        (bucket.uri("in/a.txt"), 5),
        (bucket.uri("in/b.txt"), 5),
    ]


# ---- whole jobs ----------------------------------------------------------------------


def upload_books(bucket: Bucket) -> list[str]:
    return [bucket.put(f"books/{p.name}", p.read_bytes()) for p in sorted(BOOKS.glob("*.txt"))]


def test_wordcount_from_s3_to_s3_equals_the_local_oracle(
    bucket: Bucket, run_job: Callable[..., subprocess.CompletedProcess[str]], oracle: Oracle
) -> None:
    upload_books(bucket)
    local = manifest(
        "wc-s3",
        {"builtin": "wordcount"},
        [str(BOOKS / "*.txt")],
        Path("unused"),
        input={"splitSize": "256Ki"},
        reduceTasks=3,
    )
    doc = manifest(
        "wc-s3",
        {"builtin": "wordcount"},
        [bucket.uri("books/*.txt")],
        Path("unused"),
        input={"splitSize": "256Ki"},
        reduceTasks=3,
        mapper={"replicas": 2},
        reducer={"replicas": 2},
        storage=bucket.storage,
    )
    doc["spec"]["output"]["path"] = bucket.uri("out/wc")
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    expected = oracle(local)
    assert bucket.sorted_output("out/wc") == expected
    assert bucket.keys("out/wc/") == [
        "out/wc/_SUCCESS",
        "out/wc/_summary.json",
        "out/wc/part-00000",
        "out/wc/part-00001",
        "out/wc/part-00002",
    ]
    assert bucket.uploads() == []
    summary = json.loads(bucket.read("out/wc/_summary.json"))
    assert summary["mapTasks"] > len(list(BOOKS.glob("*.txt")))  # books cut into splits

    # The sequential runner reads and writes S3 through the same interface; a prefix
    # input stands for the objects under it.
    doc["spec"]["input"]["paths"] = [bucket.uri("books/")]
    doc["spec"]["output"]["path"] = bucket.uri("out/seq")
    result = run_job(doc, "--sequential")
    assert result.returncode == 0, result.stderr
    assert bucket.sorted_output("out/seq") == expected

    # A committed output is refused without overwrite, as on a filesystem.
    result = run_job(doc)
    assert result.returncode == 2
    assert f"spec.output.path: '{bucket.uri('out/seq')}' already holds the output" in result.stderr


def test_compressed_objects_are_recognised_by_magic_and_read_whole(
    bucket: Bucket, run_job: Callable[..., subprocess.CompletedProcess[str]], oracle: Oracle
) -> None:
    books = sorted(BOOKS.glob("*.txt"))[:3]
    bucket.put("gz/a.gz", gzip.compress(books[0].read_bytes()))
    bucket.put("gz/b.txt", zstandard.ZstdCompressor().compress(books[1].read_bytes()))
    bucket.put("gz/c.txt", books[2].read_bytes())  # plain, cut into splits
    local = manifest("gz-s3", {"builtin": "wordcount"}, [str(b) for b in books], Path("unused"))
    doc = manifest(
        "gz-s3",
        {"builtin": "wordcount"},
        [bucket.uri("gz/")],
        Path("unused"),
        input={"splitSize": "64Ki"},
        reduceTasks=2,
        mapper={"replicas": 2},
        storage=bucket.storage,
    )
    doc["spec"]["output"] = {"path": bucket.uri("out/gz"), "compression": "gzip"}
    result = run_job(doc)
    assert result.returncode == 0, result.stderr
    keys = bucket.keys("out/gz/part-")
    assert keys == ["out/gz/part-00000.gz", "out/gz/part-00001.gz"]
    lines = sorted(
        line
        for key in keys
        for line in gzip.decompress(bucket.read(key))
        .decode("utf-8", "surrogateescape")
        .splitlines()
    )
    assert lines == oracle(local)
    summary = json.loads(bucket.read("out/gz/_summary.json"))
    plain_splits = -(-books[2].stat().st_size // (64 * 1024))
    assert summary["mapTasks"] == 2 + plain_splits  # one split per compressed object


def word_files(directory: Path, files: int = 2, lines: int = 2000) -> list[Path]:
    """Text over a 5000-word vocabulary: thousands of distinct keys."""
    rng = random.Random(11)
    vocabulary = [f"w{i:04d}" for i in range(5000)]
    paths = []
    for index in range(files):
        path = directory / f"words{index}.txt"
        path.write_text(
            "".join(" ".join(rng.choices(vocabulary, k=8)) + "\n" for _ in range(lines))
        )
        paths.append(path)
    return paths


def test_a_reduce_attempt_killed_mid_upload_leaves_no_visible_object(
    tmp_path: Path, bucket: Bucket, oracle: Oracle
) -> None:
    """One reduce task writing ~20 MiB (a multipart upload of 8 MiB parts), slowed so
    that it is mid-upload for seconds. The reducer is killed as soon as its upload
    exists: at that moment no part object is visible, neither under `_temporary` nor
    final. Its replacement reruns the task; the output equals the oracle and no
    unfinished upload is left behind."""
    files = word_files(tmp_path)
    app = {"module": f"{APPS / 'wide.py'}:Wide", "args": {"width": "4096"}}
    local = manifest("wide", app, [str(p) for p in files], tmp_path / "unused")
    remote = [bucket.put(f"words/{p.name}", p.read_bytes()) for p in files]
    slow_app = {**app, "args": {**app["args"], "reduce_delay": "0.0005"}}
    doc = manifest(
        "wide",
        slow_app,
        remote,
        tmp_path / "unused",
        faultTolerance={"heartbeatTimeout": "1s"},
        storage=bucket.storage,
    )
    doc["spec"]["output"]["path"] = bucket.uri("out/wide")
    seen_at_kill: list[list[str]] = []

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        if seen_at_kill or not bucket.uploads("out/wide/_temporary/"):
            return
        seen_at_kill.append([k for k in bucket.keys("out/wide/") if "part-" in k])
        slot = next(s for s in launcher.slots if s.role == "reducer")
        assert slot.process is not None
        slot.process.signal(signal.SIGKILL)

    job_plan = plan.plan_job(spec.parse_job(doc, "kill mid-upload"), [ROOT])
    launcher = Launcher(job_plan, search=[ROOT], progress=lambda s: strike(launcher, s))
    result = launcher.run()
    assert seen_at_kill == [[]], "no part object may be visible while an attempt uploads"
    assert result.summary["phase"] == "Succeeded"
    assert result.summary["attempts"].get("reduce_lost", 0) >= 1
    assert bucket.keys("out/wide/") == [
        "out/wide/_SUCCESS",
        "out/wide/_summary.json",
        "out/wide/part-00000",
    ]
    assert bucket.uploads() == []
    assert bucket.sorted_output("out/wide") == oracle(local)


# ---- errors before any task ------------------------------------------------------------


def denied_env(server: s3server.MinioServer, bucket: Bucket) -> dict[str, str]:
    """Temporary credentials (MinIO's STS AssumeRole) whose session policy allows
    nothing in the test bucket."""
    sts = boto3.session.Session().client(
        "sts",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::other/*"]}
        ],
    }
    credentials = sts.assume_role(
        RoleArn="arn:minio:iam:::role/kubemr-test",
        RoleSessionName="denied",
        Policy=json.dumps(policy),
    )["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


@pytest.mark.parametrize(
    "case", ["missing bucket", "missing key", "access denied", "bad endpoint", "bad secret"]
)
def test_unreachable_data_fails_before_any_process_naming_the_uri(
    tmp_path: Path, minio: s3server.MinioServer, bucket: Bucket, case: str
) -> None:
    bucket.put("in/a.txt", b"a b\n")
    uri = bucket.uri("in/a.txt")
    env = {"TMPDIR": str(tmp_path)}
    storage = bucket.storage
    expected = ""
    if case == "missing bucket":
        uri = "s3://no-such-bucket-kubemr/in/a.txt"
        expected = "bucket 'no-such-bucket-kubemr' does not exist"
    elif case == "missing key":
        uri = bucket.uri("in/nope.txt")
        expected = "no such key or prefix"
    elif case == "access denied":
        env.update(denied_env(minio, bucket))
        expected = "access denied"
    elif case == "bad endpoint":
        storage = {"endpoint": f"http://127.0.0.1:{s3server._free_port()}"}
        expected = f"the S3 endpoint {storage['endpoint']} is unreachable"
    elif case == "bad secret":
        env["AWS_SECRET_ACCESS_KEY"] = "wrong"
        expected = "credentials rejected (SignatureDoesNotMatch)"
    doc = manifest("bad-s3", {"builtin": "wordcount"}, [uri], tmp_path / "x", storage=storage)
    doc["spec"]["output"]["path"] = uri.rsplit("/", 2)[0] + "/out"
    result = run_cli("run", str(write_manifest(tmp_path, doc)), env=env)
    assert result.returncode == 2, result.stderr
    assert "spec.input.paths[0]: " in result.stderr
    assert uri in result.stderr and expected in result.stderr, result.stderr
    if case != "missing key":  # the output path is reached the same way, and named too
        assert f"spec.output.path: cannot access '{doc['spec']['output']['path']}'" in (
            result.stderr
        )
    assert not list(tmp_path.glob("kubemr-*")), "no job process should have started"


def test_a_master_killed_mid_reduce_resumes_from_its_journal_objects(
    tmp_path: Path, bucket: Bucket, oracle: Oracle
) -> None:
    """On S3 the journal is one object per record under `_temporary/_master/journal/`.
    The master is killed once some but not all reduce tasks are committed; the restarted
    master reads the journal objects, keeps the committed part objects (same ETag and
    modification time) and runs only the other reduce tasks."""
    files = word_files(tmp_path)
    app = {"module": f"{APPS / 'wide.py'}:Wide", "args": {"width": "16"}}
    local = manifest("resume", app, [str(p) for p in files], tmp_path / "unused")
    remote = [bucket.put(f"words/{p.name}", p.read_bytes()) for p in files]
    doc = manifest(
        "resume",
        {**app, "args": {**app["args"], "reduce_delay": "0.0005"}},
        remote,
        tmp_path / "unused",
        reduceTasks=3,
        faultTolerance={"heartbeatTimeout": "10s"},  # mappers' window to claim outputs
        storage=bucket.storage,
    )
    doc["spec"]["output"]["path"] = bucket.uri("out/resume")
    killed: dict[str, Any] = {}

    def identity(key: str) -> tuple[str, str]:
        head = bucket.client.head_object(Bucket=bucket.name, Key=key)
        return str(head["ETag"]), str(head["LastModified"])

    def strike(launcher: Launcher, status: pb.JobStatus) -> None:
        if not killed and 0 < status.reduces_done < status.reduces_total:
            assert launcher.master is not None
            parts = bucket.keys("out/resume/part-")
            killed.update(
                parts={k: identity(k) for k in parts},
                journal=len(bucket.keys("out/resume/_temporary/_master/journal/")),
            )
            launcher.master.signal(signal.SIGKILL)

    job_plan = plan.plan_job(spec.parse_job(doc, "resume on S3"), [ROOT])
    launcher = Launcher(job_plan, search=[ROOT], progress=lambda s: strike(launcher, s))
    result = launcher.run()
    assert result.summary["masterRestarts"] == 1
    assert killed["journal"] > 0, "the journal is objects under _temporary/_master/journal/"
    assert {k: identity(k) for k in killed["parts"]} == killed["parts"], "a part was rewritten"
    recovered = result.summary["recovered"]
    assert recovered["reduces"] >= len(killed["parts"]) >= 1
    assert recovered["maps"] == result.summary["mapTasks"]
    assert bucket.keys("out/resume/_temporary/") == []
    assert bucket.sorted_output("out/resume") == oracle(local)
