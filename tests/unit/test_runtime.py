"""Batch jobs' collector settings, which belong to the whole process while jobs overlap in threads."""

from __future__ import annotations

import gc

import pytest

from ledger.runtime import batch_job


def test_overlapping_jobs_keep_the_raised_thresholds_until_the_last_one_ends() -> None:
    before = gc.get_threshold()
    first, second = batch_job(), batch_job()
    first.__enter__()
    raised = gc.get_threshold()
    second.__enter__()
    first.__exit__(None, None, None)  # the first ends while the second still runs
    assert gc.get_threshold() == raised != before
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


def test_a_job_that_fails_puts_the_thresholds_back() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), batch_job():
        raise RuntimeError("the job failed")
    assert gc.get_threshold() == before
