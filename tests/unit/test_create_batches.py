"""The operator creates a job's pods in slow-start batches (kubemr_operator.lifecycle.slow_start),
as Kubernetes' Job controller does: every pod once, in order, the first alone."""

from __future__ import annotations

import pytest
from kubemr_operator.lifecycle import slow_start


def test_batches_double_up_to_the_limit_and_cover_every_pod_once() -> None:
    assert slow_start(1000, 64) == [1, 2, 4, 8, 16, 32, *[64] * 14, 41]
    assert slow_start(20, 64) == [1, 2, 4, 8, 5]
    assert slow_start(3, 1) == [1, 1, 1]
    assert slow_start(0, 64) == []


@pytest.mark.parametrize("total", [1, 2, 7, 999, 1000])
@pytest.mark.parametrize("limit", [1, 3, 64, 500])
def test_batches_sum_to_the_total_and_never_exceed_the_limit(total: int, limit: int) -> None:
    sizes = slow_start(total, limit)
    assert sum(sizes) == total and sizes[0] == 1
    assert all(0 < size <= limit for size in sizes)
