"""The baselines of bench/userapps.py: a user's app run without kubemr.

One child process per run, started by bench/userapps.py (never imported by it):

    python bench/peers.py --engine python|dask|spark --app FILE.py:Class [--args JSON]
        --inputs DIR --out FILE

- ``python``: the user's functions alone in a 2-process ``multiprocessing.Pool``: each
  process takes half of the input files, calls ``map`` on every line, gathers each key's
  values in a dict and calls ``combine`` (if the app has one) once per key; the parent
  concatenates the two halves' values per key in input order and calls ``reduce``. That
  is the least a Python engine must do with these functions: the Python limit.
- ``dask``: Dask bag (multiprocessing scheduler, 2 workers): ``read_text`` of the files
  (64 MiB blocks), the same map and per-partition combine in ``map_partitions``, then
  ``foldby`` the key (concatenating values), and ``reduce`` per key.
- ``spark``: PySpark RDD (``local[2]``): ``textFile`` per file, ``mapPartitions`` with
  the same map and combine, ``groupByKey``, ``reduce`` per key.

This script imports neither kubemr nor anything the engines do not need, so it runs in
the bench peers' virtualenv (``make bench-peers``). It writes the output lines
(``key<TAB>value``, as kubemr writes them) sorted, one per line, to ``--out``, and its
peak RSS to ``--out``.rss.json (the largest of itself and its waited-for children).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

Pair = tuple[Any, Any]


def load_app(reference: str, args: dict[str, str]) -> Any:
    path, _, attr = reference.partition(":")
    spec = importlib.util.spec_from_file_location(f"userapp_{Path(path).stem}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"peers: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return getattr(module, attr)(**args)


APP: Any = None


def _app() -> Any:
    global APP  # noqa: PLW0603 (one app per worker process, built on first use)
    if APP is None:
        APP = load_app(os.environ["PEERS_APP"], json.loads(os.environ["PEERS_ARGS"]))
    return APP


def map_and_combine(path: str, lines: Iterable[str]) -> list[Pair]:
    """The user's map over ``lines``, then its combine once per key (values in order)."""
    app = _app()
    app_map = app.map
    groups: dict[Any, list[Any]] = defaultdict(list)
    for line in lines:
        for key, value in app_map(path, line):
            groups[key].append(value)
    combine = getattr(app, "combine", None)
    if combine is None:
        return [(k, v) for k, values in groups.items() for v in values]
    return [pair for k, values in groups.items() for pair in combine(k, iter(values))]


def _python_part(paths: list[str]) -> list[Pair]:
    out: list[Pair] = []
    for path in paths:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as stream:
            out.extend(map_and_combine(path, (line.rstrip("\n") for line in stream)))
    return out


def _format(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item)


def reduce_all(app: Any, pairs: Iterable[tuple[Any, Iterable[Any]]]) -> list[str]:
    lines = [
        f"{_format(k)}\t{_format(v)}" if v is not None else _format(k)
        for key, values in pairs
        for k, v in app.reduce(key, iter(values))
    ]
    lines.sort()
    return lines


def run_python(files: list[str]) -> list[str]:
    import multiprocessing  # noqa: PLC0415

    halves = [files[0::2], files[1::2]]
    with multiprocessing.Pool(2) as pool:
        parts = pool.map(_python_part, halves, chunksize=1)
    groups: dict[Any, list[Any]] = defaultdict(list)
    for part in parts:
        for key, value in part:
            groups[key].append(value)
    return reduce_all(_app(), sorted(groups.items()))


def _bag_partition(items: Iterable[tuple[str, str]]) -> Iterator[Pair]:
    by_path: dict[str, list[str]] = defaultdict(list)
    for line, path in items:
        by_path[path].append(line.rstrip("\n"))
    for path, lines in by_path.items():
        yield from map_and_combine(path, lines)


def run_dask(files: list[str]) -> list[str]:
    import dask  # noqa: PLC0415
    import dask.bag as db  # noqa: PLC0415

    def append(acc: list[Any], pair: Pair) -> list[Any]:
        acc.append(pair[1])
        return acc

    def concat(a: list[Any], b: list[Any]) -> list[Any]:
        return a + b

    with dask.config.set(scheduler="processes", num_workers=2):
        bag = db.read_text(files, blocksize=64 * 2**20, include_path=True)
        grouped = bag.map_partitions(_bag_partition).foldby(
            key=lambda pair: pair[0],
            binop=append,
            initial=list,
            combine=concat,
            combine_initial=list,
        )
        result = grouped.compute()
    return reduce_all(_app(), sorted(result))


def run_spark(files: list[str]) -> list[str]:
    from pyspark import SparkConf, SparkContext  # noqa: PLC0415

    conf = SparkConf().setMaster("local[2]").setAppName("userapps")
    conf = conf.set("spark.ui.enabled", "false").set("spark.driver.memory", "1g")
    sc = SparkContext(conf=conf)
    sc.setLogLevel("ERROR")
    try:
        rdds = [
            sc.textFile(path).mapPartitions(lambda lines, p=path: map_and_combine(p, lines))
            for path in files
        ]
        grouped = sc.union(rdds).groupByKey(numPartitions=2).mapValues(list).collect()
    finally:
        sc.stop()
    return reduce_all(_app(), sorted(grouped))


def main() -> None:
    parser = argparse.ArgumentParser(description="a user's app without kubemr")
    parser.add_argument("--engine", choices=["python", "dask", "spark"], required=True)
    parser.add_argument("--app", required=True, help="FILE.py:Class")
    parser.add_argument("--args", default="{}", help="the app's constructor arguments, JSON")
    parser.add_argument("--inputs", type=Path, required=True, help="a directory of text files")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ["PEERS_APP"] = args.app
    os.environ["PEERS_ARGS"] = args.args
    files = sorted(str(p) for p in args.inputs.iterdir() if not p.name.startswith((".", "_")))
    run = {"python": run_python, "dask": run_dask, "spark": run_spark}[args.engine]
    lines = run(files)
    args.out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    rss = {
        "parent": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "largest child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }
    Path(f"{args.out}.rss.json").write_text(json.dumps(rss), encoding="utf-8")


if __name__ == "__main__":
    main()
