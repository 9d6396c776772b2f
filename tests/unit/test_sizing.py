"""`kubemr plan`'s arithmetic (kubemr.sizing): the seed's 12.8 TB job, per-file splits, the
reduce factor, caps and notes, and writing the values into a manifest."""

import pytest
from kubemr import sizing, spec


def test_the_seeds_job_is_200000_maps_5000_reduces_on_2000_workers() -> None:
    p = sizing.propose([sizing.parse_size("12.8T")], 2000)
    assert (p.maps, p.workers, p.reduces) == (200_000, 2_000, 5_000)
    assert (p.mappers, p.reducers, p.split_size) == (2_000, 2_000, "64M")
    text = sizing.render(p)
    assert "M = 200,000" in text and "W = 2,000" in text and "R = 5,000" in text
    assert p.location_bytes == 5_000 * sizing.BYTES_PER_PARTITION + 200_000
    assert p.master_bytes < 2**30, "the seed's master fits in 1 GiB"
    assert p.master_bytes == p.state_bytes + p.location_bytes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("12.8T", 12_800_000_000_000),
        ("12.8TB", 12_800_000_000_000),
        ("1Ti", 2**40),
        ("64MB", 64_000_000),
        ("64Mi", 64 * 2**20),
        ("1048576", 2**20),
        (" 500B ", 500),
    ],
)
def test_sizes_are_kubernetes_quantities_with_an_optional_b(text: str, size: int) -> None:
    assert sizing.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "B", "12.8 terabytes", "-1T", "1.5.2G"])
def test_a_bad_size_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        sizing.parse_size(text)


def test_splits_are_cut_per_file_as_the_planner_cuts_them() -> None:
    # 3 files: 1.5 splits, exactly 1, and empty (no split), as kubemr.splits.plan_splits.
    files = [96, 64, 0]
    assert sizing.split_count(files, 64) == 3
    p = sizing.propose(files, 1, split_size="64")
    assert (p.maps, p.files, p.input_bytes) == (3, 3, 160)


def test_r_is_the_reduce_factor_times_the_workers_rounded() -> None:
    assert sizing.propose([10**12], 7).reduces == 18  # 17.5 -> 18 (round half to even)
    assert sizing.propose([10**12], 7, reduce_factor=1).reduces == 7
    assert sizing.propose([10**12], 1, reduce_factor=0.1).reduces == 1


def test_fewer_tasks_than_workers_shrink_the_replicas_and_say_so() -> None:
    p = sizing.propose([sizing.parse_size("256M")], 10)
    assert (p.maps, p.mappers, p.reduces, p.reducers) == (4, 4, 25, 10)
    assert any("6 mappers would idle" in note for note in p.notes)


def test_caps_follow_the_spec_limits() -> None:
    p = sizing.propose([sizing.parse_size("1P")], 50_000)
    assert p.reduces == sizing.MAX_REDUCE_TASKS and p.mappers == sizing.MAX_REPLICAS
    assert len(p.notes) == 2


@pytest.mark.parametrize(
    ("workers", "kwargs", "message"),
    [
        (0, {}, "workers"),
        (1, {"reduce_factor": 0}, "reduce factor"),
        (1, {"split_size": "0"}, "split size"),
    ],
)
def test_bad_arguments_are_named(workers: int, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sizing.propose([100], workers, **kwargs)  # type: ignore[arg-type]


def test_memory_grows_with_m_plus_r_not_m_times_r() -> None:
    small = sizing.propose([sizing.parse_size("1.28T")], 200)
    big = sizing.propose([sizing.parse_size("12.8T")], 2000)
    assert big.location_bytes == 10 * small.location_bytes
    assert 9 < big.state_bytes / small.state_bytes < 11


def test_apply_sets_the_values_and_the_manifest_still_validates() -> None:
    doc = {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": "big"},
        "spec": {
            "app": {"builtin": "wordcount"},
            "input": {"paths": ["s3://bucket/in/"], "splitSize": "1Mi"},
            "output": {"path": "s3://bucket/out"},
            "mapper": {"replicas": 1, "resources": {"requests": {"cpu": "1"}}},
        },
    }
    p = sizing.propose([sizing.parse_size("12.8T")], 2000)
    updated = sizing.apply(doc, p)
    job = spec.parse_job(updated)
    assert job.spec.input.split_size == 64_000_000
    assert job.spec.input.paths == ["s3://bucket/in/"]
    assert (job.spec.reduce_tasks, job.spec.mapper.replicas, job.spec.reducer.replicas) == (
        5000,
        2000,
        2000,
    )
    assert job.spec.mapper.resources.requests == {"cpu": "1"}
    assert doc["spec"]["input"]["splitSize"] == "1Mi", "the input document is not changed"  # type: ignore[index]


def test_apply_refuses_a_spec_that_is_not_a_mapping() -> None:
    p = sizing.propose([100], 1)
    with pytest.raises(ValueError, match=r"spec\.mapper must be a mapping"):
        sizing.apply({"spec": {"mapper": 3}}, p)
