"""python -m strata.bench: the W1 id law and the --json contract."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from strata.bench import ZipfIds


def test_zipf_ranks_follow_the_pmf():
    n, s, draws = 1000, 1.05, 200_000
    ranks = ZipfIds(n, s, np.random.default_rng(1)).ranks(draws)
    assert ranks.min() >= 1 and ranks.max() <= n
    pmf = np.arange(1, n + 1, dtype=float) ** -s
    pmf /= pmf.sum()
    counts = np.bincount(ranks, minlength=n + 1)[1:]
    for k in (1, 2, 3, 10, 100):
        expected = pmf[k - 1] * draws
        assert abs(counts[k - 1] - expected) < 5 * np.sqrt(expected), k


def test_zipf_rank_buckets_follow_the_pmf_head_to_tail():
    # Most draws take the quick-accept test, the rest the full one: neither may bias a bucket.
    n, s, draws = 100_000, 1.05, 400_000
    ranks = ZipfIds(n, s, np.random.default_rng(7)).ranks(draws)
    pmf = np.arange(1, n + 1, dtype=float) ** -s
    pmf /= pmf.sum()
    for lo, hi in ((1, 2), (2, 3), (3, 10), (10, 100), (100, 10_000), (10_000, n + 1)):
        expected = pmf[lo - 1 : hi - 1].sum() * draws
        got = np.count_nonzero((ranks >= lo) & (ranks < hi))
        assert abs(got - expected) < 5 * np.sqrt(expected), (lo, hi, got, expected)


def test_zipf_refuses_key_spaces_it_cannot_map():
    with pytest.raises(ValueError, match="keys"):
        ZipfIds(2**32 + 1, 1.05, np.random.default_rng(1))
    with pytest.raises(ValueError, match="keys"):
        ZipfIds(0, 1.05, np.random.default_rng(1))


def test_rank_to_id_is_w1s_bijection():
    z = ZipfIds(10_000_000, 1.05, np.random.default_rng(1))
    assert z.a == 6_180_339
    batch = z.batch(4096)
    assert batch.dtype == np.uint64 and np.all(np.diff(batch.astype(np.int64)) > 0)
    assert 1500 < batch.size < 3000  # W1's mean is about 2302 distinct ids


def test_bench_json_fields(addr):
    out = subprocess.run(
        [sys.executable, "-m", "strata.bench", "--coordinator", addr, "--trainers", "2",
         "--duration", "1", "--warmup", "0.3", "--keys", "100000", "--batch", "512", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for field in ("pull_rows_per_s", "push_rows_per_s", "steps_per_s", "p50_ms", "p99_ms",
                  "unique_ids_per_step", "bytes_per_s"):
        assert field in summary and summary[field] >= 0, field
    assert summary["steps_per_s"] > 0
    assert summary["pull_rows_per_s"] == summary["push_rows_per_s"]
