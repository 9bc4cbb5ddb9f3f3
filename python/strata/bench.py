"""Workload W1 from Python: ``python -m strata.bench``.

The loop of ``strata-bench`` (``shared/WORKLOAD.md``) written against the public
:class:`strata.Client`, so that comparing the two in one run shows what the binding costs:
each trainer is a thread with its own client (its own connections); a step draws a Zipf
batch with numpy, deduplicates it, pulls the rows into a buffer reused every step and pushes
one gradient per row, a slice of a pool drawn once (Adagrad on the server). The flags and the
``--json`` fields are ``strata-bench``'s. Ids follow W1's law and rank → id map; the random
streams are numpy's, not W1's SplitMix64 streams.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from typing import List

import numpy as np

from .client import Client
from .errors import NotFound

__all__ = ["ZipfIds", "main", "run"]


class ZipfIds:
    """Batches of W1 ids: ranks ``1..keys`` with ``P(k) ∝ k^-s`` by rejection-inversion
    sampling with ``strata-bench``'s quick-accept test (vectorised), mapped to ids by
    ``(k - 1) · a mod keys``, then sorted and deduplicated."""

    def __init__(self, keys: int, exponent: float, rng: np.random.Generator):
        if exponent == 1.0:
            raise ValueError("zipf exponent 1.0 is not supported (use e.g. 1.05)")
        if not 1 <= keys <= 1 << 32:
            raise ValueError(f"keys must be in 1..2^32, got {keys}")
        self.n = keys
        self.s = exponent
        self.t = 1.0 - exponent
        self.rng = rng
        self.h_n = self._H(keys + 0.5)
        self.span = self._H(1.5) - 1.0 - self.h_n
        # A draw whose rounding moved it by at most this is accepted without the full test.
        self.quick = 2.0 - self._H_inv(self._H(2.5) - 2.0 ** -exponent)
        a = int(math.floor(0.6180339887498949 * keys))
        while math.gcd(a, keys) != 1:
            a += 1
        self.a = a

    def _H(self, x):
        return (np.power(x, self.t) - 1.0) / self.t

    def _H_inv(self, u):
        return np.power(1.0 + u * self.t, 1.0 / self.t)

    def _draw(self, m: int) -> np.ndarray:
        """The accepted ranks of ``m`` proposals (float64), in place where numpy allows."""
        u = self.rng.random(m)
        u *= self.span
        u += self.h_n
        # x = H⁻¹(u) = exp(ln(1 + t·u) / t)
        x = u * self.t
        x += 1.0
        np.log(x, out=x)
        x *= 1.0 / self.t
        np.exp(x, out=x)
        k = np.rint(x)
        np.clip(k, 1.0, float(self.n), out=k)
        accept = (k - x) <= self.quick
        slow = np.flatnonzero(~accept)
        if slow.size:
            ks = k[slow]
            accept[slow] = u[slow] >= self._H(ks + 0.5) - np.power(ks, -self.s)
        return k[accept]

    def ranks(self, count: int) -> np.ndarray:
        """``count`` Zipf ranks (int64)."""
        k = self._draw(count + count // 32 + 16)
        while k.size < count:
            k = np.concatenate([k, self._draw(count - k.size + 16)])
        return k[:count].astype(np.int64)

    def batch(self, draws: int) -> np.ndarray:
        """One W1 batch: ``draws`` ids, sorted, duplicates removed (uint64)."""
        ids = self.ranks(draws).view(np.uint64)  # ranks >= 1; (k - 1) · a < 2^64
        ids -= 1
        ids *= self.a
        ids %= self.n
        ids.sort()
        keep = np.empty(ids.size, dtype=bool)
        keep[:1] = True
        np.not_equal(ids[1:], ids[:-1], out=keep[1:])
        return ids[keep]


class _Trainer(threading.Thread):
    """One closed-loop trainer: its own client, batches and gradient pool."""

    def __init__(self, args, index: int, start_at: float, window: tuple):
        super().__init__(name=f"w1-trainer-{index}", daemon=True)
        self.args = args
        self.client = Client(args.coordinator)
        rng = np.random.default_rng([args.seed, index])
        self.ids = ZipfIds(args.keys, args.zipf, rng)
        self.rng = rng
        self.pool = (rng.standard_normal((2 * args.batch, args.dim)) * args.grad_scale).astype(
            np.float32
        )
        # Rows land in one buffer, reused each step (strata-bench's trainers do the same).
        self.rows_out = np.empty((args.batch, args.dim), dtype=np.float32)
        self.start_at = start_at
        self.window = window
        self.latencies: List[float] = []
        self.rows = 0
        self.error: BaseException | None = None

    def run(self):
        try:
            self._loop()
        except BaseException as e:  # reported by the main thread
            self.error = e

    def _loop(self):
        args, (begin, end) = self.args, self.window
        while time.perf_counter() < self.start_at:
            time.sleep(0.001)
        while True:
            unique = self.ids.batch(args.batch)
            first = int(self.rng.integers(args.batch))
            grads = self.pool[first : first + unique.size]
            t0 = time.perf_counter()
            if t0 >= end:
                return
            self.client.pull_into(args.table, unique, self.rows_out[: unique.size])
            self.client.push(args.table, unique, grads)
            if t0 >= begin:
                self.latencies.append(time.perf_counter() - t0)
                self.rows += unique.size


def run(args) -> dict:
    """Runs W1 with ``args`` (the parsed flags) and returns the summary fields."""
    setup = Client(args.coordinator)
    try:
        setup.drop_table(args.table)
    except NotFound:
        pass
    setup.create_table(
        args.table,
        dim=args.dim,
        optimizer=args.optimizer,
        lr=args.lr,
        init=f"uniform:{args.init_scale}",
        seed=args.seed,
        **({"initial_accumulator": args.init_acc} if args.optimizer in ("adagrad", "ftrl") else {}),
    )
    start_at = time.perf_counter() + 0.2
    begin = start_at + args.warmup
    window = (begin, begin + args.duration)
    trainers = [_Trainer(args, t, start_at, window) for t in range(args.trainers)]
    for t in trainers:
        t.start()
    for t in trainers:
        t.join()
    for t in trainers:
        if t.error is not None:
            raise t.error
    lat = np.array([x for t in trainers for x in t.latencies]) * 1e3
    steps = int(lat.size)
    rows = sum(t.rows for t in trainers)
    rows_per_s = rows / args.duration
    pct = (lambda q: float(np.percentile(lat, q))) if steps else (lambda q: 0.0)
    return {
        "target": "strata-python",
        "address": args.coordinator,
        "trainers": args.trainers,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "dim": args.dim,
        "batch": args.batch,
        "zipf": args.zipf,
        "keys": args.keys,
        "seed": args.seed,
        "optimizer": args.optimizer,
        "client_threads": int(os.environ.get("STRATA_CLIENT_THREADS", "2")),
        "steps": steps,
        "steps_per_s": steps / args.duration,
        "pull_rows_per_s": rows_per_s,
        "push_rows_per_s": rows_per_s,
        "unique_ids_per_step": rows / steps if steps else 0.0,
        "bytes_per_s": rows_per_s * args.dim * 4 * 2,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "p999_ms": pct(99.9),
        "max_ms": float(lat.max()) if steps else 0.0,
        "mean_ms": float(lat.mean()) if steps else 0.0,
    }


def parser() -> argparse.ArgumentParser:
    """The flags of ``strata-bench``'s W1 run."""
    p = argparse.ArgumentParser(prog="python -m strata.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--coordinator", default=os.environ.get("STRATA_COORDINATOR", "127.0.0.1:7070"),
                   help="coordinator address(es), comma-separated")
    p.add_argument("--trainers", type=int, default=4, help="concurrent trainers (threads)")
    p.add_argument("--duration", type=float, default=20.0, help="measured window, seconds")
    p.add_argument("--warmup", type=float, default=5.0, help="warm-up before the window, seconds")
    p.add_argument("--dim", type=int, default=64, help="row width")
    p.add_argument("--batch", type=int, default=4096, help="draws per step (before dedup)")
    p.add_argument("--zipf", type=float, default=1.05, help="Zipf exponent of id popularity")
    p.add_argument("--keys", type=int, default=10_000_000, help="key space: ids 0..keys")
    p.add_argument("--optimizer", default="adagrad", help="server-side optimizer (W1: adagrad)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate")
    p.add_argument("--init-acc", dest="init_acc", type=float, default=0.1,
                   help="Adagrad initial accumulator")
    p.add_argument("--init-scale", dest="init_scale", type=float, default=0.01,
                   help="new rows are uniform in [-init-scale, init-scale)")
    p.add_argument("--grad-scale", dest="grad_scale", type=float, default=0.01,
                   help="gradients are N(0,1) x grad-scale")
    p.add_argument("--seed", type=int, default=1, help="run seed")
    p.add_argument("--table", default="w1_python", help="table name (dropped and created)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def main(argv=None) -> int:
    """Entry point of ``python -m strata.bench``."""
    args = parser().parse_args(argv)
    summary = run(args)
    print(
        f"W1 from Python: {args.trainers} trainers, {args.duration:g} s, dim {args.dim}, "
        f"batch {args.batch}, zipf {args.zipf:g}, keys {args.keys}, {args.optimizer}",
        file=sys.stderr if args.json else sys.stdout,
    )
    text = (
        f"steps/s {summary['steps_per_s']:.1f}  rows/s {summary['pull_rows_per_s']:.0f}  "
        f"unique/step {summary['unique_ids_per_step']:.0f}  p50 {summary['p50_ms']:.2f} ms  "
        f"p99 {summary['p99_ms']:.2f} ms  {summary['bytes_per_s'] / 1e6:.1f} MB/s"
    )
    print(text, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
