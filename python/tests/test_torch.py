"""strata.torch: gradients equal torch.nn's under SGD with lr 1, shapes, prefetch, errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import strata  # noqa: E402
from strata.torch import Embedding, EmbeddingBag  # noqa: E402

VOCAB = 50
DIM = 8


def sgd_table(client, name):
    client.create_table(name, dim=DIM, optimizer="sgd", lr=1.0, init="uniform:0.5", seed=7)
    return client.pull(name, np.arange(VOCAB))


def server_rows(client, name):
    return torch.from_numpy(client.pull(name, np.arange(VOCAB)))


def reference_bag(initial, mode):
    ref = torch.nn.EmbeddingBag(VOCAB, DIM, mode=mode)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(initial))
    return ref, torch.optim.SGD(ref.parameters(), lr=1.0)


def run_steps(client, name, mode, make_batch, steps=5):
    initial = sgd_table(client, name)
    ref, opt = reference_bag(initial, mode)
    ours = EmbeddingBag(client, name, mode=mode)
    gen = torch.Generator().manual_seed(3)
    for step in range(steps):
        inputs = make_batch(gen)
        target = torch.randn(ours(**inputs).shape, generator=gen)
        loss = ((ours(**inputs) - target) ** 2).sum()
        loss.backward()
        opt.zero_grad()
        ((ref(**inputs) - target) ** 2).sum().backward()
        opt.step()
        torch.testing.assert_close(server_rows(client, name), ref.weight.detach(),
                                   rtol=1e-5, atol=1e-5, msg=f"after step {step}")


def test_bag_sum_2d_with_duplicates(client, table_name):
    def batch(gen):
        # 6 bags of 5 ids from a small range: many duplicates within and across bags.
        return {"input": torch.randint(0, 12, (6, 5), generator=gen)}

    run_steps(client, table_name, "sum", batch)


def test_bag_mean_with_offsets_and_empty_bag(client, table_name):
    def batch(gen):
        ids = torch.randint(0, VOCAB, (20,), generator=gen)
        ids[:4] = ids[4]  # duplicates
        return {"input": ids, "offsets": torch.tensor([0, 3, 3, 10, 17])}

    run_steps(client, table_name, "mean", batch)


def test_bag_per_sample_weights(client, table_name):
    def batch(gen):
        ids = torch.randint(0, 10, (16,), generator=gen)
        return {
            "input": ids,
            "offsets": torch.tensor([0, 4, 9, 12]),
            "per_sample_weights": torch.rand(16, generator=gen),
        }

    run_steps(client, table_name, "sum", batch)


def test_embedding_matches_torch(client, table_name):
    initial = sgd_table(client, table_name)
    ref = torch.nn.Embedding(VOCAB, DIM)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(initial))
    opt = torch.optim.SGD(ref.parameters(), lr=1.0)
    ours = Embedding(client, table_name)
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        ids = torch.randint(0, 15, (3, 4, 2), generator=gen)
        out = ours(ids)
        assert out.shape == (3, 4, 2, DIM)
        w = torch.randn(out.shape, generator=gen)
        (out * w).sum().backward()
        opt.zero_grad()
        (ref(ids) * w).sum().backward()
        opt.step()
    torch.testing.assert_close(server_rows(client, table_name), ref.weight.detach(),
                               rtol=1e-5, atol=1e-5)


def test_dense_layers_train_with_the_users_optimizer(client, table_name):
    client.create_table(table_name, dim=DIM, optimizer="adagrad", lr=0.1)
    bag = EmbeddingBag(client, table_name, mode="sum")
    head = torch.nn.Linear(DIM, 1)
    assert list(bag.parameters()) == []
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    before = head.weight.detach().clone()
    rows_before = client.pull(table_name, [1, 2, 3])
    loss = head(bag(torch.tensor([[1, 2], [2, 3]]))).sum()
    loss.backward()
    opt.step()
    assert not torch.equal(before, head.weight)
    assert not np.array_equal(rows_before, client.pull(table_name, [1, 2, 3]))


def test_prefetch_is_used_by_forward(client, table_name):
    client.create_table(table_name, dim=DIM, optimizer="sgd", lr=1.0, init="uniform:0.1", seed=2)
    bag = EmbeddingBag(client, table_name, mode="sum")
    ids = torch.tensor([[4, 1], [1, 9]])
    expect = bag(ids).detach()
    bag.prefetch(ids)
    assert len(bag._prefetcher.pending) == 1
    torch.testing.assert_close(bag(ids).detach(), expect)
    assert len(bag._prefetcher.pending) == 0


def test_zero_length_batch(client, table_name):
    client.create_table(table_name, dim=DIM)
    bag = EmbeddingBag(client, table_name, mode="sum")
    out = bag(torch.empty(0, dtype=torch.int64), torch.tensor([0, 0]))
    assert out.shape == (2, DIM) and not out.any()
    out.sum().backward()
    emb = Embedding(client, table_name)
    assert emb(torch.empty(0, 3, dtype=torch.int64)).shape == (0, 3, DIM)


def test_eval_under_no_grad_pushes_nothing(client, table_name):
    client.create_table(table_name, dim=DIM, optimizer="sgd", lr=1.0)
    bag = EmbeddingBag(client, table_name, mode="sum")
    before = client.pull(table_name, [1, 2])
    with torch.no_grad():
        out = bag(torch.tensor([[1, 2]]))
    assert not out.requires_grad
    assert np.array_equal(client.pull(table_name, [1, 2]), before)


def test_errors(client, table_name):
    client.create_table(table_name, dim=DIM)
    bag = EmbeddingBag(client, table_name, mode="sum")
    with pytest.raises(strata.InvalidArgument, match="integer"):
        bag(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(strata.InvalidArgument, match=">= 0"):
        bag(torch.tensor([[1, -2]]))
    with pytest.raises(strata.InvalidArgument, match="offsets"):
        bag(torch.tensor([1, 2]))
    with pytest.raises(strata.InvalidArgument, match="mode"):
        EmbeddingBag(client, table_name, mode="median")
    with pytest.raises(strata.NotFound):
        Embedding(client, "missing_" + table_name)
