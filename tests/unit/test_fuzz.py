"""Fuzzing the inputs kubemr parses: manifests (the spec model) and shuffle frames."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubemr import runs, spec

from manifestfuzz import manifests

FIELD_PATH = re.compile(
    r"^(\(manifest\)|apiVersion|kind|metadata(\.\w+)?"
    r"|spec(\.\w+|\[\d+\]|\['[^']*'\]|\[\"[^\"]*\"\])*)[: ]"
)
FUZZ = settings(
    max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(manifests())
def test_the_model_never_crashes_and_every_rejection_names_a_field(doc: dict[str, Any]) -> None:
    try:
        spec.parse_job(doc)
    except spec.SpecError as error:
        assert error.problems
        for problem in error.problems:
            assert FIELD_PATH.match(problem), problem


@FUZZ
@given(st.binary(max_size=2048))
def test_garbage_frames_give_frame_errors_only(data: bytes) -> None:
    try:
        frames, used = runs.split_frames(data)
        list(runs.records_of_frames(frames))
        assert used <= len(data)
        list(runs.records_of_frames(runs.iter_frames(io.BytesIO(data))))
    except runs.FrameError:
        pass


def _stream() -> bytes:
    records = [(f"k{i:04d}".encode(), b"\x01" * (i % 7)) for i in range(300)]
    return b"".join(runs.encode_frames(records, batch_bytes=256))


@pytest.mark.parametrize("cut", range(1, 200, 7))
def test_truncated_streams_are_refused_cleanly(cut: int) -> None:
    data = _stream()
    truncated = data[: len(data) - cut]
    _frames, used = runs.split_frames(truncated)  # whole frames only, the rest left over
    assert used <= len(truncated)
    with pytest.raises(runs.FrameError, match="truncated"):
        list(runs.iter_frames(io.BytesIO(truncated)))


def test_an_oversized_frame_header_is_refused_before_anything_is_allocated() -> None:
    header = (runs.MAX_FRAME + 1).to_bytes(4, "little")
    with pytest.raises(runs.FrameError, match="exceeds"):
        runs.split_frames(header + b"x" * 16)
    with pytest.raises(runs.FrameError, match="exceeds"):
        list(runs.iter_frames(io.BytesIO(header)))
