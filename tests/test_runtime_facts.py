"""Facts with one home in the runtime: the percentile, the replica database path, event text."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbft_core.ready import Dropped, ViewChangeStarted
from pbft_core.report import percentile
from pbft_core.runtime.set_run import set_seed
from pbft_core.runtime.summary import event_summary, event_text
from pbft_core.storage import replica_db_file, replica_db_path


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([1, 2, 3, 4], 0.50, 2),  # nearest rank: ceil(0.5 * 4) = 2nd value, never interpolated
        ([4, 3, 2, 1], 0.50, 2),  # order does not matter
        ([1, 2, 3, 4, 5], 0.50, 3),
        ([1, 2, 3, 4], 0.99, 4),
        ([1, 2, 3, 4], 0.25, 1),
        ([1, 2, 3, 4], 0.0, 1),  # rank at least 1
        ([7.5], 0.9, 7.5),
        (list(range(1, 101)), 0.90, 90),
        (list(range(1, 101)), 0.99, 99),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 0.5) is None


def test_the_bench_reports_the_same_percentile() -> None:
    from cli.bench_smallbank import _percentile

    assert _percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert _percentile([], 0.5) == 0.0


def test_a_replica_database_has_one_path_rule() -> None:
    assert replica_db_file(Path("d"), 3) == Path("d/n3.sqlite")
    assert replica_db_path(Path("run"), 2, 5) == Path("run/set-2/n5.sqlite")


def test_the_per_set_seed_is_derived_from_the_run_seed() -> None:
    assert set_seed(None, 1) is None
    assert set_seed(7, 2) == b"pbft/run-seed/7/set/2"


def test_event_text_is_written_once_with_or_without_markup() -> None:
    summary = event_summary(ViewChangeStarted(2, "execution timer"))
    assert summary == ("view-change", {"new_view": 2, "reason": "execution timer"})
    assert event_text(*summary) == "view change → v2 (execution timer)"
    assert event_text(*summary, markup=True) == "[yellow]view change → v2[/yellow] (execution timer)"
    kind, detail = event_summary(Dropped("bad signature", "PrepareShare", "3"))  # type: ignore[misc]
    assert event_text(kind, detail) == "dropped PrepareShare from n3: bad signature (first of its kind)"
    assert event_text("unknown", {}) is None
