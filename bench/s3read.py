"""Benchmark: reading map splits from a local S3 server against reading them from local disk.

Run it with ``make bench-s3`` or::

    .venv/bin/python bench/s3read.py [--size-mb 256] [--split-mb 64] [--repeat 5] [--json FILE]

What it does, in one run:

1. Builds (or reuses) the corpus of ``bench/wordcount.py`` (the Gutenberg books
   concatenated into ``--size-mb`` MiB under ``.cache/bench/``).
2. Starts MinIO (``.cache/bin/minio``, built by ``make s3-server``) on loopback with a
   fresh data directory, and uploads the corpus as one object through kubemr's own
   writer (a multipart upload).
3. Cuts the file and the object into the same ``--split-mb`` splits and reads every
   split the way a map task does (:func:`kubemr.inputs.read_blocks`, 4 MiB blocks of
   whole lines): from the local file, and from the object with ranged GETs. The two
   sources alternate, ``--repeat`` times; every read must return the same bytes.
4. Prints the median throughput of each, the ratio, and the GET requests per split.

Both sources are warm: the local file sits in the page cache after it is written, and so
do MinIO's data files; the comparison is of the read paths (HTTP, signing, the S3
server) rather than of disks. Nothing here says what AWS S3 itself delivers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import wordcount  # bench/wordcount.py: the corpus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from kubemr import inputs, stores  # noqa: E402
from kubemr.spec import StorageSpec  # noqa: E402
from kubemr.splits import Split, plan_splits  # noqa: E402

import s3server  # noqa: E402 (tests/support: the MinIO the tests use)

MIB = 2**20


def read_all(splits: list[Split], storage: StorageSpec | None) -> tuple[float, str, int]:
    """Seconds to read every split, a digest of what was read, and the bytes read."""
    digest = hashlib.sha256()
    total = 0
    started = time.perf_counter()
    for split in splits:
        for block in inputs.read_blocks(split, storage=storage):
            digest.update(block)
            total += len(block)
    return time.perf_counter() - started, digest.hexdigest(), total


def count_requests(store: stores.S3Store, splits: list[Split], storage: StorageSpec) -> list[int]:
    counts: list[int] = []
    seen: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(str(params.get("Range")))

    store.client.meta.events.register("before-parameter-build.s3.GetObject", record)
    try:
        for split in splits:
            seen.clear()
            for _ in inputs.read_blocks(split, storage=storage):
                pass
            counts.append(len(seen))
    finally:
        store.client.meta.events.unregister("before-parameter-build.s3.GetObject", record)
    return counts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mb", type=int, default=256, help="corpus size, MiB")
    parser.add_argument("--split-mb", type=int, default=64, help="split size, MiB")
    parser.add_argument("--repeat", type=int, default=5, help="reads of each source")
    parser.add_argument("--cache-dir", type=Path, default=wordcount.DEFAULT_CACHE)
    parser.add_argument("--data-dir", type=Path, default=wordcount.DEFAULT_DATA)
    parser.add_argument("--json", type=Path, help="write every measurement here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not s3server.built():
        raise SystemExit(s3server.SKIP_REASON)
    corpus, _ = wordcount.build_corpus(args.data_dir, args.size_mb * MIB, args.cache_dir)
    size = corpus.stat().st_size
    split_size = args.split_mb * MIB
    with s3server.MinioServer() as server:
        os.environ.update(server.client_env())  # the standard AWS chain, as in a pod
        storage = StorageSpec(endpoint=server.endpoint)
        store = stores.store_for("s3://bench/", storage)
        assert isinstance(store, stores.S3Store)
        store.client.create_bucket(Bucket="bench")
        uri = "s3://bench/corpus.txt"
        started = time.perf_counter()
        with store.open_write(uri) as out, corpus.open("rb") as source:
            while chunk := source.read(8 * MIB):
                out.write(chunk)
        upload = time.perf_counter() - started
        local_splits = plan_splits([(str(corpus), size)], split_size)
        remote_splits = plan_splits([(uri, size)], split_size)
        runs: dict[str, list[float]] = {"local": [], "s3": []}
        digests: set[str] = set()
        for _ in range(args.repeat):
            for name, splits, spec in (
                ("local", local_splits, None),
                ("s3", remote_splits, storage),
            ):
                seconds, digest, total = read_all(splits, spec)
                if total != size:
                    raise SystemExit(f"bench: {name} read {total} bytes of {size}")
                digests.add(digest)
                runs[name].append(seconds)
        if len(digests) != 1:
            raise SystemExit("bench: S3 and local reads returned different bytes")
        requests = count_requests(store, remote_splits, storage)
    medians = {name: statistics.median(times) for name, times in runs.items()}
    rates = {name: size / MIB / seconds for name, seconds in medians.items()}
    print(
        f"split reads: {size / MIB:.0f} MiB in {len(local_splits)} splits of "
        f"{args.split_mb} MiB, medians of {args.repeat}"
    )
    for name in ("local", "s3"):
        print(f"  {name:<6} {medians[name]:7.3f} s  {rates[name]:8.1f} MiB/s")
    print(f"  ratio  s3 / local throughput = {rates['s3'] / rates['local']:.2f}")
    print(f"  GET requests per split: {requests}; upload (multipart) {upload:.2f} s")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} cpus, load {os.getloadavg()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "bytes": size,
            "splitBytes": split_size,
            "seconds": runs,
            "medianSeconds": medians,
            "mibPerSecond": rates,
            "requestsPerSplit": requests,
            "uploadSeconds": upload,
        }
        args.json.write_text(json.dumps(body, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
