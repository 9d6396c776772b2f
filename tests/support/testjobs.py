"""Helpers shared by the runtime tests: manifests, `kubemr` processes, sorted outputs."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubemr import compression, plan, spec

ROOT = Path(__file__).resolve().parents[2]
BOOKS = ROOT.parent / "shared" / "data" / "gutenberg"
APPS = ROOT / "tests" / "runtime" / "apps"
RUN_DEADLINE = 240.0
"""Seconds a single local job may take in these tests."""


def manifest(
    name: str, app: dict[str, Any], paths: list[str], output: Path, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"app": app, "input": {"paths": paths}, "output": {"path": str(output)}}
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key].update(value)
        else:
            body[key] = value
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": name},
        "spec": body,
    }


def write_manifest(directory: Path, doc: dict[str, Any]) -> Path:
    path = directory / f"{doc['metadata']['name']}-{len(list(directory.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def run_cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `kubemr` command line and wait (bounded by RUN_DEADLINE)."""
    return subprocess.run(
        [sys.executable, "-m", "kubemr", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=RUN_DEADLINE,
        check=False,
        env={**os.environ, **(env or {})},
    )


def sorted_output(output: Path) -> list[str]:
    lines: list[str] = []
    for part in sorted(output.glob("part-*")):
        data = compression.decompress_bytes(part.read_bytes(), str(part))
        lines.extend(data.decode("utf-8", "surrogateescape").splitlines())
    return sorted(lines)


Runner = Callable[..., subprocess.CompletedProcess[str]]
"""The `run_job` fixture: runs a manifest dict with `kubemr run --quiet`."""


def word_input(directory: Path, files: int = 3, lines: int = 500) -> list[str]:
    """Small deterministic text files of words from a 200-word vocabulary."""
    rng = random.Random(7)
    vocabulary = [f"w{i:03d}" for i in range(200)]
    paths = []
    for f in range(files):
        path = directory / f"words{f}.txt"
        rows = (" ".join(rng.choices(vocabulary, k=8)) for _ in range(lines))
        path.write_text("".join(f"{row}\n" for row in rows))
        paths.append(str(path))
    return paths


def run_bench(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Smoke-run ``bench/<script>`` at a tiny size: cache and ``--json`` in ``tmp_path``."""
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / script),
            *args,
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
            str(tmp_path / "results.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE,
        check=False,
    )


def small_plan(tmp_path: Path, reduce_tasks: int = 2, **extra: Any) -> plan.JobPlan:
    """The plan of a small wordcount job over ``tmp_path/in.txt`` (a few 256-byte splits)."""
    source = tmp_path / "in.txt"
    if not source.exists():
        source.write_text("a b c\n" * 200)
    doc = manifest(
        "wc",
        {"builtin": "wordcount"},
        [str(source)],
        tmp_path / "out",
        input={"splitSize": "256"},
        reduceTasks=reduce_tasks,
        **extra,
    )
    return plan.plan_job(spec.parse_job(doc, "test"), [])
