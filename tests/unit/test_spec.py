"""The manifest model: defaults, every error at once, quantities and durations."""

from pathlib import Path

import pytest
from kubemr import quantities, spec

ROOT = Path(__file__).resolve().parents[2]


def manifest(**spec_fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "app": {"builtin": "wordcount"},
        "input": {"paths": ["in.txt"]},
        "output": {"path": "out"},
    }
    body.update(spec_fields)
    return {
        "apiVersion": spec.API_VERSION,
        "kind": spec.KIND,
        "metadata": {"name": "wc"},
        "spec": body,
    }


def test_defaults() -> None:
    job = spec.parse_job(manifest())
    assert job.spec.reduce_tasks == 1
    assert job.spec.input.split_size is None  # the default rule: kubemr.splits
    assert job.spec.shuffle.mode == "streaming"
    assert job.spec.fault_tolerance.heartbeat_timeout == 10.0
    assert job.spec.combine is None


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*-job.yaml")), ids=str)
def test_examples_validate(path: Path) -> None:
    job = spec.load_job(path)
    assert job.spec.app.builtin in spec.BUILTIN_APPS or job.spec.app.module is not None


def test_every_bad_field_is_listed_at_once() -> None:
    bad = manifest(
        reduceTasks=-1,
        shuffle={"mode": "fast", "bufsize": 1},
        faultTolerance={"heartbeatTimeout": "ten"},
    )
    bad["spec"]["input"] = {"paths": ["x"], "splitSize": "12Qi"}  # type: ignore[index]
    bad["spec"]["app"] = {"builtin": "wordcount", "module": "m:A"}  # type: ignore[index]
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_job(bad, "job.yaml")
    text = str(caught.value)
    for fragment in (
        "spec.reduceTasks",
        "-1",
        "spec.shuffle.mode",
        "'fast'",
        "spec.shuffle.bufsize: unknown field",
        "spec.faultTolerance.heartbeatTimeout",
        "spec.input.splitSize",
        "12Qi",
        "exactly one of app.builtin and app.module",
        "job.yaml",
    ):
        assert fragment in text
    assert len(caught.value.problems) == 6


def test_missing_required_fields_are_named() -> None:
    doc = manifest()
    del doc["spec"]["output"]  # type: ignore[attr-defined]
    with pytest.raises(spec.SpecError, match=r"spec.output: required field is missing"):
        spec.parse_job(doc)


def test_wrong_kind_and_name() -> None:
    doc = manifest()
    doc["kind"] = "Job"
    doc["metadata"] = {"name": "Bad_Name"}
    with pytest.raises(spec.SpecError) as caught:
        spec.parse_job(doc)
    assert any(p.startswith("kind:") for p in caught.value.problems)
    assert any(p.startswith("metadata.name:") for p in caught.value.problems)


def test_module_reference_is_checked() -> None:
    with pytest.raises(spec.SpecError, match=r"spec\.app\.module"):
        spec.parse_job(manifest(app={"module": "no colon here"}))
    assert spec.parse_job(manifest(app={"module": "tests/apps/x.py:App"}))


def test_unreadable_and_non_yaml_manifests(tmp_path: Path) -> None:
    with pytest.raises(spec.SpecError, match="cannot read"):
        spec.load_job(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed")
    with pytest.raises(spec.SpecError, match="not valid YAML"):
        spec.load_job(broken)


def test_dump_round_trips() -> None:
    job = spec.parse_job(manifest(shuffle={"bufferSize": "8Mi"}))
    assert spec.parse_job(spec.dump_job(job)) == job
    assert spec.dump_job(job)["spec"]["shuffle"]["bufferSize"] == "8Mi"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64Mi", 64 * 2**20),
        ("1G", 10**9),
        ("500k", 500_000),
        ("1048576", 2**20),
        (7, 7),
        ("1.5Ki", 1536),
    ],
)
def test_quantities(text: object, size: int) -> None:
    assert quantities.parse_quantity(text) == size


@pytest.mark.parametrize("text", ["", "12Qi", "-1", "1 0Mi", True, 1.5, None])
def test_bad_quantities(text: object) -> None:
    with pytest.raises(ValueError):
        quantities.parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10.0), ("500ms", 0.5), ("1m30s", 90.0), (3, 3.0), ("1h", 3600.0)]
)
def test_durations(text: object, seconds: float) -> None:
    assert quantities.parse_duration(text) == seconds
