"""A DLRM-style click model trained two ways: with ``torch.nn.EmbeddingBag`` in process, and
with ``strata.torch.EmbeddingBag`` against a strata server (embeddings and their Adagrad on
the server). Same data, seed, initial rows and optimizers; prints final loss, AUC and
examples/s of each (``--json``: one object at the end).

Model: 13 dense features → bottom MLP → a row of ``dim`` values; 26 sparse features, each a
bag of ids → ``dim`` values; pairwise dot products of the 27 rows ("dot interaction") with
the bottom output → top MLP → click logit.

Data: synthetic, Criteo-shaped (13 dense log-normal counts, 26 categorical features with
Zipf-skewed ids), with a planted signal: the click logit is a linear function of the dense
features plus a per-id effect on 8 of the sparse features, so the loss must fall and the AUC
must rise. The 26 features share one table: feature ``f``'s id ``v`` is row ``f * vocab + v``.

    strata-server dev --listen 127.0.0.1:7070 --data-dir /tmp/strata-dev &
    python examples/dlrm/dlrm.py --coordinator 127.0.0.1:7070
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

DENSE = 13
SPARSE = 26
SIGNAL_FEATURES = 8


@dataclass
class Data:
    """Examples: dense ``(n, 13)`` float32, sparse ids ``(n, 26, hot)`` int64 (already offset
    into the shared table), labels ``(n,)`` float32."""

    dense: np.ndarray
    sparse: np.ndarray
    labels: np.ndarray

    def batch(self, i: int, size: int):
        """Batch ``i`` as tensors: dense, flat ids, offsets (one bag per feature), labels."""
        s = slice(i * size, (i + 1) * size)
        ids = torch.from_numpy(self.sparse[s].reshape(-1))
        hot = self.sparse.shape[2]
        offsets = torch.arange(0, ids.numel(), hot, dtype=torch.int64)
        return (
            torch.from_numpy(self.dense[s]),
            ids,
            offsets,
            torch.from_numpy(self.labels[s]),
        )


def synthetic(n: int, vocab: int, hot: int, seed: int, sample: int = 0) -> Data:
    """``n`` Criteo-shaped examples with a planted signal. ``seed`` fixes the signal (the
    same for training and held-out data); ``sample`` picks the examples drawn from it."""
    world = np.random.default_rng(seed)
    effects = world.normal(0.0, 1.0, size=(SIGNAL_FEATURES, vocab))
    w_dense = world.normal(0.0, 0.5, size=DENSE)
    rng = np.random.default_rng([seed, sample])
    dense = np.log1p(rng.lognormal(1.0, 1.2, size=(n, DENSE))).astype(np.float32)
    dense = (dense - dense.mean(0)) / (dense.std(0) + 1e-6)
    ranks = rng.zipf(1.2, size=(n, SPARSE, hot)) - 1
    raw = (ranks * 2654435761) % vocab
    logit = dense @ w_dense - 1.0
    for f in range(SIGNAL_FEATURES):
        logit += effects[f][raw[:, f, :]].mean(axis=1)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    offsets = (np.arange(SPARSE) * vocab)[None, :, None]
    return Data(dense.astype(np.float32), (raw + offsets).astype(np.int64), labels)


def mlp(sizes, last_activation=True) -> nn.Sequential:
    """Linear layers of ``sizes`` with ReLU between (and after, if ``last_activation``)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """Bottom MLP, an embedding bag per sparse feature (one shared table), dot interaction,
    top MLP. ``embeddings`` is any module with ``torch.nn.EmbeddingBag``'s forward."""

    def __init__(self, embeddings: nn.Module, dim: int):
        super().__init__()
        self.embeddings = embeddings
        self.bottom = mlp([DENSE, 64, dim])
        pairs = (SPARSE + 1) * SPARSE // 2
        self.top = mlp([dim + pairs, 64, 32, 1], last_activation=False)
        rows, cols = torch.triu_indices(SPARSE + 1, SPARSE + 1, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, dense, ids, offsets):
        x = self.bottom(dense)
        e = self.embeddings(ids, offsets).view(dense.shape[0], SPARSE, -1)
        z = torch.cat([x.unsqueeze(1), e], dim=1)
        dots = torch.bmm(z, z.transpose(1, 2))[:, self.rows, self.cols]
        return self.top(torch.cat([x, dots], dim=1)).squeeze(1)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (rank statistic; ties share their mean rank)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def train(name, model, dense_opt, sparse_opt, data, test, args) -> dict:
    """Trains ``model`` for ``args.steps`` batches; returns its loss curve, final loss and AUC
    on held-out data, and examples/s of the training loop."""
    loss_fn = nn.BCEWithLogitsLoss()
    curve = []
    started = time.perf_counter()
    for step in range(args.steps):
        dense, ids, offsets, labels = data.batch(step, args.batch)
        if args.prefetch and step + 1 < args.steps and hasattr(model.embeddings, "prefetch"):
            model.embeddings.prefetch(data.batch(step + 1, args.batch)[1])
        loss = loss_fn(model(dense, ids, offsets), labels)
        dense_opt.zero_grad()
        if sparse_opt is not None:
            sparse_opt.zero_grad()
        loss.backward()
        dense_opt.step()
        if sparse_opt is not None:
            sparse_opt.step()
        curve.append(loss.item())
    elapsed = time.perf_counter() - started
    with torch.no_grad():
        dense, ids, offsets, labels = test.batch(0, len(test.labels))
        logits = model(dense, ids, offsets)
        test_loss = float(loss_fn(logits, labels))
        test_auc = auc(logits.numpy(), labels.numpy())
    return {
        "name": name,
        "final_train_loss": float(np.mean(curve[-args.window :])),
        "test_loss": test_loss,
        "auc": test_auc,
        "examples_per_s": args.steps * args.batch / elapsed,
        "seconds": elapsed,
        "curve": curve,
    }


def build_dense(model_seed: int, embeddings: nn.Module, dim: int, lr: float):
    """The DLRM around ``embeddings``, its dense layers initialised from ``model_seed``, and
    their Adagrad."""
    torch.manual_seed(model_seed)
    model = DLRM(embeddings, dim)
    dense_params = [p for n, p in model.named_parameters() if not n.startswith("embeddings.")]
    return model, torch.optim.Adagrad(dense_params, lr=lr)


def main(argv=None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--coordinator", default="127.0.0.1:7070")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--vocab", type=int, default=5000, help="ids per sparse feature")
    p.add_argument("--hot", type=int, default=1, help="ids per bag")
    p.add_argument("--lr", type=float, default=0.05, help="Adagrad lr of the embeddings")
    p.add_argument("--dense-lr", type=float, default=0.02, help="Adagrad lr of the MLPs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--window", type=int, default=20, help="steps averaged for the final loss")
    p.add_argument("--prefetch", action="store_true", help="prefetch the next batch's rows")
    p.add_argument("--table", default="dlrm_sparse")
    p.add_argument("--only", choices=["torch", "strata"], help="train one way only")
    p.add_argument("--short", action="store_true", help="a quick run: 120 steps of 256")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = p.parse_args(argv)
    if args.short:
        args.steps, args.batch, args.vocab = 120, 256, 2000
    torch.set_num_threads(max(1, torch.get_num_threads()))

    data = synthetic(args.steps * args.batch, args.vocab, args.hot, args.seed)
    test = synthetic(8192, args.vocab, args.hot, args.seed, sample=1)
    rows = SPARSE * args.vocab
    init_acc, eps = 0.1, 1e-10

    initial = None
    client = None
    if args.only != "torch":
        import strata
        import strata.torch as st

        client = strata.Client(args.coordinator)
        try:
            client.drop_table(args.table)
        except strata.NotFound:
            pass
        client.create_table(
            args.table, dim=args.dim, optimizer="adagrad", lr=args.lr, init="uniform:0.05",
            seed=args.seed, initial_accumulator=init_acc, epsilon=eps,
        )
        # The in-process baseline starts from the very rows the server created.
        initial = client.pull(args.table, np.arange(rows, dtype=np.uint64))

    results = []
    if args.only != "strata":
        bag = nn.EmbeddingBag(rows, args.dim, mode="sum", sparse=True)
        with torch.no_grad():
            if initial is not None:
                bag.weight.copy_(torch.from_numpy(initial))
            else:
                bag.weight.uniform_(-0.05, 0.05)
        model, dense_opt = build_dense(args.seed, bag, args.dim, args.dense_lr)
        sparse_opt = torch.optim.Adagrad(
            bag.parameters(), lr=args.lr, initial_accumulator_value=init_acc, eps=eps
        )
        results.append(train("torch.nn.EmbeddingBag", model, dense_opt, sparse_opt, data, test, args))
    if args.only != "torch":
        bag = st.EmbeddingBag(client, args.table, mode="sum")
        model, dense_opt = build_dense(args.seed, bag, args.dim, args.dense_lr)
        results.append(train("strata.torch.EmbeddingBag", model, dense_opt, None, data, test, args))

    print(f"DLRM: {args.steps} steps of {args.batch}, dim {args.dim}, 26 x {args.vocab} ids",
          file=sys.stderr if args.json else sys.stdout)
    header = f"{'embeddings':<28} {'train loss':>10} {'test loss':>10} {'AUC':>7} {'examples/s':>11}"
    lines = [header] + [
        f"{r['name']:<28} {r['final_train_loss']:>10.4f} {r['test_loss']:>10.4f} "
        f"{r['auc']:>7.4f} {r['examples_per_s']:>11.0f}"
        for r in results
    ]
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"steps": args.steps, "batch": args.batch, "dim": args.dim,
                          "vocab": args.vocab, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
