"""strata in other processes: DataLoader workers (fork and spawn) whose dataset holds a client
or an EmbeddingBag, prefetch across fork, and two trainer processes started by torchrun
(DDP for the dense part, one shared table) checked against a single-process reference."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from strata.torch import EmbeddingBag  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
DDP_EXAMPLE = REPO / "examples" / "ddp" / "train.py"
DIM = 8
ITEMS = 12
LOADER_TIMEOUT_S = 120


def item_ids(i: int) -> np.ndarray:
    """The ids of dataset item ``i``: a few, overlapping between items."""
    return np.array([i, i + 1, 3 * i + 7, 0], dtype=np.uint64)


class ClientRows(torch.utils.data.Dataset):
    """Each item pulls its rows with a :class:`strata.Client` in the process that loads it."""

    def __init__(self, client, table):
        self.client, self.table = client, table

    def __len__(self):
        return ITEMS

    def __getitem__(self, i):
        return os.getpid(), torch.from_numpy(self.client.pull(self.table, item_ids(i)))


class BagRows(torch.utils.data.Dataset):
    """Each item prefetches its own rows and those of the item its worker loads next (of 2
    workers), then pools its own through an :class:`EmbeddingBag` (one bag per id) in the
    process that loads it."""

    def __init__(self, bag):
        self.bag = bag

    def __len__(self):
        return ITEMS

    def __getitem__(self, i):
        for j in (i, i + 2):
            self.bag.prefetch(torch.from_numpy(item_ids(j).astype(np.int64)))
        with torch.no_grad():
            rows = self.bag(torch.from_numpy(item_ids(i).astype(np.int64)).view(-1, 1))
        return os.getpid(), rows


def sgd_table(client, name, vocab=64):
    client.create_table(name, dim=DIM, optimizer="sgd", lr=1.0, init="uniform:0.5", seed=11)
    return client.pull(name, np.arange(vocab))


def load_all(dataset, start_method):
    """Every item of ``dataset`` through a DataLoader with 2 workers of ``start_method``;
    returns the worker pids and the rows by item, and how long it took."""
    began = time.monotonic()
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=2, timeout=LOADER_TIMEOUT_S,
        multiprocessing_context=start_method,
    )
    pids, rows = set(), []
    for pid, item in loader:
        pids.add(int(pid))
        rows.append(item.numpy())
    return pids, rows, time.monotonic() - began


def expected_rows(client, table):
    return [client.pull(table, item_ids(i)) for i in range(ITEMS)]


def test_dataloader_workers_pull_with_a_client(client, table_name):
    # Spawned workers unpickle their client: the EmbeddingBag test below covers that.
    sgd_table(client, table_name)
    expect = expected_rows(client, table_name)  # the parent has used its client before
    pids, rows, took = load_all(ClientRows(client, table_name), "fork")
    assert os.getpid() not in pids and len(pids) == 2
    assert len(rows) == ITEMS
    for got, want in zip(rows, expect):
        np.testing.assert_array_equal(got, want)
    assert took < LOADER_TIMEOUT_S


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_workers_prefetch_through_an_embedding_bag(client, table_name, start_method):
    sgd_table(client, table_name)
    bag = EmbeddingBag(client, table_name, mode="sum")
    # The parent's prefetch thread is running (and a pull may be in flight) when it forks.
    bag.prefetch(torch.arange(40))
    bag.prefetch(torch.arange(3))
    expect = expected_rows(client, table_name)
    pids, rows, took = load_all(BagRows(bag), start_method)
    assert os.getpid() not in pids and len(pids) == 2
    for got, want in zip(rows, expect):
        np.testing.assert_allclose(got, want, rtol=0, atol=0)
    assert took < LOADER_TIMEOUT_S
    # The parent's own prefetches are still there for it.
    torch.testing.assert_close(bag(torch.arange(3).view(-1, 1)).detach(),
                               torch.from_numpy(client.pull(table_name, np.arange(3))))


def _child_prefetches(bag, queue):
    # As in a DataLoader worker: torch's OpenMP pool of the parent does not survive fork.
    torch.set_num_threads(1)
    ids = torch.tensor([[2], [5], [9]])
    bag.prefetch(ids)
    used_prefetch = len(bag._prefetcher.pending) == 1
    rows = bag(ids).detach().numpy()
    queue.put((used_prefetch, len(bag._prefetcher.pending), rows.tolist()))


def test_prefetch_works_in_a_child_forked_while_pulls_are_in_flight(client, table_name):
    sgd_table(client, table_name)
    bag = EmbeddingBag(client, table_name, mode="sum")
    ctx = multiprocessing.get_context("fork")
    expect = client.pull(table_name, [2, 5, 9]).tolist()
    for attempt in range(4):
        # The same ids as the child's, so an inherited (never finishing) pull would match.
        bag.prefetch(torch.tensor([[2], [5], [9]]))
        bag.prefetch(torch.arange(attempt * 100, attempt * 100 + 2000))
        queue = ctx.Queue()
        child = ctx.Process(target=_child_prefetches, args=(bag, queue), daemon=True)
        child.start()
        try:
            used_prefetch, left, rows = queue.get(timeout=60)
            child.join(timeout=60)
        finally:
            if child.is_alive():
                child.kill()
        assert child.exitcode == 0
        assert used_prefetch and left == 0
        assert rows == expect
    # The parent's prefetches were kept and are used by its forwards.
    assert torch.equal(bag(torch.tensor([[2], [5], [9]])).detach(), torch.tensor(expect))


def load_example():
    spec = importlib.util.spec_from_file_location("ddp_train", DDP_EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference(train, initial, steps, seed, batch, bag, vocab, world=2):
    """The model of ``world`` DDP ranks trained in one process: each rank's row gradients
    applied (summed) by SGD lr 1; dense gradients averaged as DDP does."""
    table = torch.nn.EmbeddingBag(vocab, DIM, mode="sum")
    with torch.no_grad():
        table.weight.copy_(torch.from_numpy(initial))
    dense = train.dense_model(DIM, seed)
    opt = torch.optim.SGD(dense.parameters(), lr=train.DENSE_LR)
    for step in range(steps):
        opt.zero_grad()
        table.zero_grad()
        total = 0
        for rank in range(world):
            ids, features, labels = train.batch(seed, rank, step, batch, bag, vocab)
            total = total + train.loss_of(dense, table(ids), features, labels)
        total.backward()
        for p in dense.parameters():
            p.grad /= world
        opt.step()
        with torch.no_grad():
            table.weight -= table.weight.grad
    return table.weight.detach(), dense.state_dict()


def torchrun(addr, table, out, *extra, steps):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(DDP_EXAMPLE), "--coordinator", addr, "--table", table, "--vocab", "64",
         "--steps", str(steps), "--batch", "8", "--bag", "3", "--seed", "5", "--out", str(out),
         *extra],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO,
    )


def test_two_torchrun_ranks_train_one_table_with_ddp(client, table_name, tmp_path):
    steps = 8
    initial = sgd_table(client, table_name)
    run = torchrun(client.addr, table_name, tmp_path, steps=steps)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "2 ranks, 8 steps" in run.stdout
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    train = load_example()
    want_rows, want_dense = reference(train, initial, steps, seed=5, batch=8, bag=3, vocab=64)
    torch.testing.assert_close(torch.from_numpy(client.pull(table_name, np.arange(64))),
                               want_rows, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(want_rows, torch.from_numpy(initial))
    for name, value in ranks[0]["dense"].items():
        assert torch.equal(value, ranks[1]["dense"][name]), name
        torch.testing.assert_close(value, want_dense[name], rtol=1e-5, atol=1e-5)


def test_two_torchrun_ranks_with_prefetch(client, table_name, tmp_path):
    initial = sgd_table(client, table_name)
    run = torchrun(client.addr, table_name, tmp_path, "--prefetch", steps=20)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for name, value in ranks[0]["dense"].items():
        assert torch.equal(value, ranks[1]["dense"][name]), name
    rows = client.pull(table_name, np.arange(64))
    assert np.isfinite(rows).all() and not np.array_equal(rows, initial)
    assert all(len(r["losses"]) == 20 for r in ranks)
