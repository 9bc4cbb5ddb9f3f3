"""The API contract of strata.Client: each call, each error class, dtype and shape checks,
zero-length batches."""

from __future__ import annotations

import asyncio
import pickle
import threading

import numpy as np
import pytest

import strata


def test_create_pull_push_roundtrip(client, table_name):
    client.create_table(table_name, dim=16, optimizer="adagrad", lr=0.05, init="uniform:0.01", seed=1)
    ids = np.array([1, 2, 3], dtype=np.uint64)
    rows = client.pull(table_name, ids)
    assert rows.dtype == np.float32 and rows.shape == (3, 16)
    assert np.all(np.abs(rows) <= 0.01)
    assert np.array_equal(client.pull(table_name, ids), rows), "rows are stable once created"
    applied = client.push(table_name, ids, np.full((3, 16), 0.1, dtype=np.float32))
    assert applied == 3
    assert not np.array_equal(client.pull(table_name, ids), rows)


def test_ids_accepts_int64_and_lists(client, table_name):
    client.create_table(table_name, dim=4, init="uniform:0.5", seed=3)
    expect = client.pull(table_name, np.array([5, 7], dtype=np.uint64))
    assert np.array_equal(client.pull(table_name, np.array([5, 7], dtype=np.int64)), expect)
    assert np.array_equal(client.pull(table_name, [5, 7]), expect)
    assert np.array_equal(client.pull(table_name, np.array([5, 7], dtype=np.int32)), expect)


def test_duplicates_pull_same_row_and_push_sums(client, table_name):
    client.create_table(table_name, dim=2, optimizer="sgd", lr=1.0, init="zeros")
    rows = client.pull(table_name, [9, 9, 4])
    assert np.array_equal(rows[0], rows[1])
    client.push(table_name, [9, 9, 4], np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32))
    after = client.pull(table_name, [9, 4])
    assert np.allclose(after, [[-4, -6], [-5, -6]])


def test_pull_into_fills_callers_buffer(client, table_name):
    client.create_table(table_name, dim=8, init="uniform:0.1", seed=2)
    ids = np.arange(100, dtype=np.uint64)
    out = np.zeros((100, 8), dtype=np.float32)
    address = out.__array_interface__["data"][0]
    returned = client.pull_into(table_name, ids, out)
    assert returned is out and out.__array_interface__["data"][0] == address
    assert np.array_equal(out, client.pull(table_name, ids))
    dup = np.array([3, 1, 3], dtype=np.uint64)
    out2 = np.empty((3, 8), dtype=np.float32)
    client.pull_into(table_name, dup, out2)
    assert np.array_equal(out2, client.pull(table_name, dup))


def test_push_from_and_pull_into_views_of_bigger_arrays(client, table_name):
    # The bench's pattern: gradients are rows of a pool, rows land in the head of a buffer.
    client.create_table(table_name, dim=4, optimizer="sgd", lr=1.0, init="zeros")
    pool = np.arange(40, dtype=np.float32).reshape(10, 4)
    ids = np.array([2, 5, 7], dtype=np.uint64)
    assert client.push(table_name, ids, pool[3:6]) == 3
    pool[:] = 0  # the push has returned: changing the pool changes nothing on the server
    buffer = np.full((10, 4), 7.0, dtype=np.float32)
    client.pull_into(table_name, ids, buffer[:3])
    np.testing.assert_array_equal(buffer[:3], -np.arange(12, 24, dtype=np.float32).reshape(3, 4))
    assert (buffer[3:] == 7.0).all()


def test_tables_and_drop(client, table_name):
    client.create_table(table_name, dim=5, optimizer="adam", lr=1e-3, beta1=0.8)
    client.pull(table_name, [1, 2])
    entry = next(t for t in client.tables() if t["name"] == table_name)
    assert entry["dim"] == 5 and entry["optimizer"] == "adam"
    assert entry["rows"] == 2 and entry["bytes"] > 0
    assert {"name", "dim", "optimizer", "rows", "bytes"} <= set(entry)
    client.drop_table(table_name)
    assert table_name not in [t["name"] for t in client.tables()]
    with pytest.raises(strata.NotFound):
        client.pull(table_name, [1])


def test_dense_roundtrip(client, table_name):
    client.create_dense(table_name, shape=(4, 3), optimizer="sgd", lr=0.5)
    w = client.pull_dense(table_name)
    assert w.shape == (4, 3) and w.dtype == np.float32 and not w.any()
    client.push_dense(table_name, np.ones((4, 3), dtype=np.float32))
    assert np.allclose(client.pull_dense(table_name), -0.5)
    client.create_dense(table_name + "_adam", shape=(64, 32), optimizer="adam", lr=1e-3)
    client.push_dense(table_name + "_adam", np.ones((64, 32), dtype=np.float32))
    assert client.pull_dense(table_name + "_adam").shape == (64, 32)
    with pytest.raises(strata.InvalidArgument):
        client.push_dense(table_name, np.ones((4, 3), dtype=np.float64))
    with pytest.raises(strata.InvalidArgument):
        client.push_dense(table_name, np.ones(5, dtype=np.float32))


def test_checkpoint_returns_id(client, table_name):
    client.create_table(table_name, dim=4)
    client.pull(table_name, [1, 2, 3])
    cid = client.checkpoint()
    assert isinstance(cid, str) and cid
    assert cid in [c["id"] for c in client.checkpoints()]


def test_zero_length_batches(client, table_name):
    client.create_table(table_name, dim=6)
    empty = np.empty(0, dtype=np.uint64)
    rows = client.pull(table_name, empty)
    assert rows.shape == (0, 6) and rows.dtype == np.float32
    assert client.pull(table_name, []).shape == (0, 6)
    assert client.push(table_name, empty, np.empty((0, 6), dtype=np.float32)) == 0
    out = np.empty((0, 6), dtype=np.float32)
    assert client.pull_into(table_name, empty, out) is out


def test_shape_and_dtype_errors_are_clear(client, table_name):
    client.create_table(table_name, dim=4)
    with pytest.raises(strata.InvalidArgument, match="1-D"):
        client.pull(table_name, np.zeros((2, 2), dtype=np.uint64))
    with pytest.raises(strata.InvalidArgument, match=">= 0"):
        client.pull(table_name, np.array([1, -1], dtype=np.int64))
    with pytest.raises(strata.InvalidArgument, match="dtype float64"):
        client.pull(table_name, np.array([1.0, 2.0]))
    with pytest.raises(strata.InvalidArgument, match="float32, got dtype float64"):
        client.push(table_name, [1, 2], np.zeros((2, 4)))
    with pytest.raises(strata.InvalidArgument, match="dim is 4"):
        client.push(table_name, [1, 2], np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(strata.InvalidArgument, match="shape"):
        client.push(table_name, [1, 2], np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(strata.InvalidArgument, match="float32"):
        client.pull_into(table_name, [1, 2], np.zeros((2, 4)))
    with pytest.raises(strata.InvalidArgument, match="C-contiguous"):
        client.pull_into(table_name, [1, 2], np.zeros((4, 2), dtype=np.float32).T)
    with pytest.raises(strata.InvalidArgument, match="dim is 4"):
        client.pull_into(table_name, [1, 2], np.zeros((2, 3), dtype=np.float32))
    e = pytest.raises(strata.InvalidArgument, client.push, table_name, [1], np.zeros((1, 4)))
    assert e.value.code == "INVALID_ARGUMENT"
    assert isinstance(e.value, strata.StrataError) and isinstance(e.value, ValueError)


def test_server_dim_check_when_client_has_no_dim(addr, client, table_name):
    client.create_table(table_name, dim=4)
    other = strata.Client(addr)  # knows no dims: the server judges
    with pytest.raises(strata.InvalidArgument) as e:
        other.push(table_name, [1], np.zeros((1, 3), dtype=np.float32))
    assert e.value.code == "INVALID_ARGUMENT"


def test_error_classes_and_codes(addr, client, table_name):
    with pytest.raises(strata.NotFound) as e:
        client.pull("no_such_table_" + table_name, [1])
    assert e.value.code == "NOT_FOUND"
    with pytest.raises(strata.NotFound):
        client.drop_table("no_such_table_" + table_name)
    with pytest.raises(strata.InvalidArgument) as e:
        client.create_table(table_name, dim=4, optimizer="nope")
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(strata.InvalidArgument, match="unknown optimizer hyperparameter"):
        client.create_table(table_name, dim=4, learning_rate=0.1)
    with pytest.raises(strata.InvalidArgument, match="init"):
        client.create_table(table_name, dim=4, init="gaussian")
    client.create_table(table_name, dim=4)
    with pytest.raises(strata.StrataError) as e:
        client.create_table(table_name, dim=4)
    assert e.value.code == "ALREADY_EXISTS"
    with pytest.raises(strata.ResourceExhausted) as e:
        client.pull(table_name, np.arange(5_000_000, dtype=np.uint64))
    assert e.value.code == "RESOURCE_EXHAUSTED"
    with pytest.raises(strata.Unavailable) as e:
        strata.Client("127.0.0.1:1")
    assert e.value.code == "UNAVAILABLE"
    for cls in (strata.NotFound, strata.InvalidArgument, strata.ResourceExhausted,
                strata.Unavailable, strata.AmbiguousPush):
        assert issubclass(cls, strata.StrataError)
        err = pickle.loads(pickle.dumps(cls("boom", "X")))
        assert type(err) is cls and err.code == "X" and str(err) == "boom"


def test_ambiguous_push_is_raised_when_the_node_dies(tmp_path):
    from conftest import DevServer

    s = DevServer(str(tmp_path))
    c = strata.Client(s.addr)
    c.create_table("amb", dim=4)
    c.pull("amb", [1])
    s.stop()
    with pytest.raises((strata.AmbiguousPush, strata.Unavailable)) as e:
        c.push("amb", [1], np.zeros((1, 4), dtype=np.float32))
    assert e.value.code in ("UNKNOWN", "UNAVAILABLE")


def test_threads_share_a_client(client, table_name):
    client.create_table(table_name, dim=8, optimizer="sgd", lr=1.0, init="zeros")
    errors = []

    def work(k):
        try:
            for _ in range(20):
                ids = np.arange(k * 10, k * 10 + 10, dtype=np.uint64)
                client.pull(table_name, ids)
                client.push(table_name, ids, np.ones((10, 8), dtype=np.float32))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert np.allclose(client.pull(table_name, np.arange(40)), -20.0)


def test_async_client(addr, table_name):
    async def main():
        async with await strata.AsyncClient.connect(addr) as c:
            await c.create_table(table_name, dim=4, optimizer="sgd", lr=1.0, init="zeros")
            await asyncio.gather(*[
                c.push(table_name, [i], np.ones((1, 4), dtype=np.float32)) for i in range(8)
            ])
            rows = await c.pull(table_name, np.arange(8))
            assert np.allclose(rows, -1.0)
            assert table_name in [t["name"] for t in await c.tables()]
            with pytest.raises(strata.NotFound):
                await c.pull("missing_" + table_name, [1])

    asyncio.run(main())


def test_client_pickles_and_reconnects(client, table_name):
    client.create_table(table_name, dim=3, init="uniform:0.1", seed=5)
    clone = pickle.loads(pickle.dumps(client))
    assert np.array_equal(clone.pull(table_name, [1, 2]), client.pull(table_name, [1, 2]))


def _child_pulls(client, table, queue):
    queue.put(client.pull(table, [1, 2]).tolist())


def test_client_works_in_a_forked_child(client, table_name):
    import multiprocessing

    client.create_table(table_name, dim=3, init="uniform:0.1", seed=5)
    expect = client.pull(table_name, [1, 2]).tolist()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_pulls, args=(client, table_name, queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and got == expect


def test_labels_name_where_the_client_runs(addr, table_name):
    labelled = strata.Client(addr, labels="zone=z1, rack=r1")
    assert labelled.labels == "zone=z1, rack=r1"
    labelled.create_table(table_name, dim=2)
    labelled.push(table_name, [1, 2], np.ones((2, 2), dtype=np.float32))
    clone = pickle.loads(pickle.dumps(labelled))
    assert clone.labels == labelled.labels
    assert clone.pull(table_name, [1]).shape == (1, 2)
    with pytest.raises(strata.InvalidArgument, match="not key=value"):
        strata.Client(addr, labels="rack")
    with pytest.raises(strata.InvalidArgument, match="twice"):
        strata.Client(addr, labels="rack=r1,rack=r2")


def test_connect_timeout_bounds_the_wait_for_a_silent_coordinator():
    import socket
    import time

    # A socket that accepts connections (the kernel's backlog) but never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    address = "127.0.0.1:%d" % silent.getsockname()[1]
    try:
        began = time.monotonic()
        with pytest.raises(strata.Unavailable) as e:
            strata.Client(address, connect_timeout=0.5)
        took = time.monotonic() - began
        assert took < 3, f"took {took:.1f} s"
        assert address in str(e.value)
    finally:
        silent.close()
    for bad in (0, -1, float("nan")):
        with pytest.raises(strata.InvalidArgument, match="connect_timeout"):
            strata.Client(address, connect_timeout=bad)
