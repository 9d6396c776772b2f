"""Hypothesis strategies for MapReduceJob manifests: valid ones, slightly wrong ones and
garbage, shared by the model fuzz test (tests/unit) and the CRD agreement test
(tests/operator)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

FIELD_PATH = re.compile(
    r"^(\(manifest\)|apiVersion|kind|metadata(\.[\w-]+)?"
    r"|spec(\.[\w-]+|\[\d+\]|\['[^']*'\]|\[\"[^\"]*\"\])*)[: ]"
)
"""How each of the spec model's problems starts: the path of the field it is about."""

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.sampled_from([0, 1, -1, 3, 64, 65536, 100_000, 100_001, 2**31]),
    st.text(max_size=12),
    st.sampled_from(
        [
            "64Mi",
            "1.5Mi",
            "12Qi",
            "10s",
            "1m30s",
            "ten",
            "",
            "wordcount",
            "grep",
            "sideways",
            "barrier",
            "streaming",
            "hash",
            "range",
            "DeleteAll",
            "KeepAll",
            "/abs",
            "rel",
            "m:A",
            "x.py:App",
            "no colon",
            "gzip",
            "zstd",
            "bzip2",
            "none",
            "jsonl",
            "whole-file",
            "records",
            "text",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)

FIELDS: dict[str, Any] = {
    "app": st.one_of(
        st.fixed_dictionaries({"builtin": st.sampled_from(["wordcount", "grep", "pagerank"])}),
        st.fixed_dictionaries({"module": st.sampled_from(["m:A", "apps/x.py:App", "bad"])}),
        st.dictionaries(st.sampled_from(["builtin", "module", "args"]), VALUES, max_size=3),
        st.fixed_dictionaries(
            {"module": st.just("x.py:App")},
            optional={
                "requirements": st.one_of(
                    st.lists(
                        st.one_of(
                            st.sampled_from(["inflection==0.5.1", "-e .", "#x", "", " a"]),
                            st.text(max_size=8),
                        ),
                        max_size=2,
                    ),
                    VALUES,
                ),
                "bundle": st.one_of(
                    st.fixed_dictionaries(
                        {"sha256": st.sampled_from(["ab" * 32, "AB" * 32, "0" * 63, ""])},
                        optional={
                            "configMap": st.sampled_from(["wc-app-1", "Bad_Name", ""]),
                            "url": st.sampled_from(["s3://b/k.zip", "s3://b/", "http://x/y"]),
                        },
                    ),
                    VALUES,
                ),
            },
        ),
    ),
    "input": st.one_of(
        st.fixed_dictionaries(
            {"paths": st.lists(st.sampled_from(["a", "/data/*.txt", ""]), max_size=2)},
            optional={"splitSize": st.one_of(SCALARS), "format": SCALARS},
        ),
        VALUES,
    ),
    "output": st.one_of(
        st.fixed_dictionaries(
            {"path": st.sampled_from(["/out", "", "out/x"])},
            optional={"overwrite": SCALARS, "compression": SCALARS, "format": SCALARS},
        ),
        VALUES,
    ),
    "reduceTasks": SCALARS,
    "steps": st.one_of(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "app": st.one_of(
                        st.fixed_dictionaries({"module": st.sampled_from(["m:A", "bad"])}),
                        VALUES,
                    ),
                    "reduceTasks": SCALARS,
                    "combine": SCALARS,
                    "partitioner": SCALARS,
                },
            ),
            max_size=3,
        ),
        VALUES,
    ),
    "mapper": st.one_of(st.fixed_dictionaries({}, optional={"replicas": SCALARS}), VALUES),
    "reducer": st.one_of(st.fixed_dictionaries({}, optional={"replicas": SCALARS}), VALUES),
    "combine": SCALARS,
    "partitioner": SCALARS,
    "shuffle": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "mode": SCALARS,
                "bufferSize": SCALARS,
                "chunkSize": SCALARS,
                "parallelFetches": SCALARS,
            },
        ),
        VALUES,
    ),
    "faultTolerance": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "maxTaskAttempts": SCALARS,
                "heartbeatTimeout": SCALARS,
                "speculative": SCALARS,
                "maxSkippedRecords": SCALARS,
            },
        ),
        VALUES,
    ),
    "backoffLimit": SCALARS,
    "activeDeadlineSeconds": SCALARS,
    "ttlSecondsAfterFinished": SCALARS,
    "suspend": SCALARS,
    "cleanupPolicy": SCALARS,
    "pendingTimeout": SCALARS,
    "nodeSelector": VALUES,
    "volumes": VALUES,
    "colour": SCALARS,
}


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    """A manifest built around a valid one: some fields dropped, some given odd values."""
    spec: dict[str, Any] = {
        "app": {"builtin": "wordcount"},
        "input": {"paths": ["/data/*.txt"]},
        "output": {"path": "/out/wc"},
    }
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=4, unique=True)):
        spec[name] = draw(FIELDS[name])
    for name in draw(st.lists(st.sampled_from(["app", "input", "output"]), max_size=1)):
        spec.pop(name, None)
    name = draw(st.sampled_from(["wc", "a" * 52, "a" * 53, "Bad_Name", "wc-2"]))
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": name},
        "spec": spec,
    }
