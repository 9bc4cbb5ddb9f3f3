"""Data-parallel training with ``torchrun``: the dense part of the model is wrapped in
``DistributedDataParallel`` (gloo), the sparse part is a ``strata.torch.EmbeddingBag`` on one
table all ranks share. The table's optimizer runs on the server: each rank pushes the row
gradients of its own batch and the server applies all of them, while DDP averages the dense
gradients across ranks.

    strata-server dev --listen 127.0.0.1:7070 --data-dir /tmp/strata-dev &
    torchrun --standalone --nproc_per_node 2 examples/ddp/train.py --coordinator 127.0.0.1:7070

A step on every rank: pull the rows of its batch and forward, backward (DDP all-reduces the
dense gradients, the bag pushes its rows' gradients), the dense optimizer's step. Barriers
after the pulls and after the pushes make every step see exactly the pushes of the steps
before it, so the ranks train as one process would on their batches together. With
``--prefetch`` a rank pulls the next batch's rows in the background during this step and there
are no barriers: rows may miss the pushes of the step in flight (one step of staleness, the
usual trade of an asynchronous parameter server). Rank 0 creates the table unless it exists.
``--out DIR`` writes each rank's dense weights and losses to ``DIR/rank{R}.pt``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

FEATURES = 4
HIDDEN = 16
DENSE_LR = 0.1


def dense_model(dim: int, seed: int) -> nn.Module:
    """The dense part: the pooled row of a bag and ``FEATURES`` dense features → a logit
    (the same initial weights on every rank for a seed)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim + FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))


def batch(seed: int, rank: int, step: int, size: int, bag: int, vocab: int
          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s batch of step ``step``: ids ``(size, bag)`` skewed towards low ids (so
    ranks share rows), dense features ``(size, FEATURES)`` and 0/1 labels ``(size,)`` drawn
    with a planted signal (the first feature and ids divisible by 7 raise the click odds)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + rank * 10_007 + step)
    u = torch.rand((size, bag), generator=gen, dtype=torch.float64)
    ids = (vocab * u.pow(3)).long().clamp_(max=vocab - 1)
    features = torch.randn((size, FEATURES), generator=gen)
    logit = 2.0 * features[:, 0] - 1.0 + 1.5 * (ids % 7 == 0).float().sum(1)
    labels = (torch.rand(size, generator=gen) < torch.sigmoid(logit)).float()
    return ids, features, labels


def loss_of(dense: nn.Module, pooled: torch.Tensor, features: torch.Tensor,
            labels: torch.Tensor) -> torch.Tensor:
    """The click loss of a batch given its pooled rows."""
    logits = dense(torch.cat([pooled, features], dim=1)).squeeze(1)
    return F.binary_cross_entropy_with_logits(logits, labels)


def parser() -> argparse.ArgumentParser:
    """The flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--coordinator", default=os.environ.get("STRATA_COORDINATOR", "127.0.0.1:7070"))
    p.add_argument("--table", default="ddp_emb", help="the shared table (created unless it exists)")
    p.add_argument("--vocab", type=int, default=1000, help="ids 0..vocab")
    p.add_argument("--dim", type=int, default=16, help="row width of a table this creates")
    p.add_argument("--optimizer", default="adagrad", help="optimizer of a table this creates")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate of a table this creates")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=32, help="bags per step and rank")
    p.add_argument("--bag", type=int, default=4, help="ids per bag")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--prefetch", action="store_true", help="pull the next batch during this step")
    p.add_argument("--out", help="directory for rank{R}.pt (dense weights, losses)")
    return p


def main(argv=None) -> int:
    """One rank's training loop (``torchrun`` sets RANK, WORLD_SIZE, MASTER_ADDR, ...)."""
    args = parser().parse_args(argv)
    import strata
    from strata.torch import EmbeddingBag

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    client = strata.Client(args.coordinator)
    if rank == 0 and args.table not in [t["name"] for t in client.tables()]:
        client.create_table(args.table, dim=args.dim, optimizer=args.optimizer, lr=args.lr,
                            init="uniform:0.05", seed=args.seed)
    dist.barrier()
    bag = EmbeddingBag(client, args.table, mode="sum")
    dense = nn.parallel.DistributedDataParallel(dense_model(bag.embedding_dim, args.seed))
    opt = torch.optim.SGD(dense.parameters(), lr=DENSE_LR)

    def data(step):
        return batch(args.seed, rank, step, args.batch, args.bag, args.vocab)

    losses = []
    began = time.perf_counter()
    for step in range(args.steps):
        ids, features, labels = data(step)
        if args.prefetch and step + 1 < args.steps:
            bag.prefetch(data(step + 1)[0])
        loss = loss_of(dense, bag(ids), features, labels)
        if not args.prefetch:
            dist.barrier()  # every rank has pulled this step's rows before any rank pushes
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not args.prefetch:
            dist.barrier()  # every rank's pushes are applied before the next step's pulls
        losses.append(loss.item())
    took = time.perf_counter() - began
    if rank == 0:
        k = max(1, len(losses) // 10)
        first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
        print(f"{world} ranks, {args.steps} steps in {took:.1f} s: "
              f"loss {first:.4f} (first {k} steps) -> {last:.4f} (last {k})", flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        torch.save({"dense": dense.module.state_dict(), "losses": losses},
                   os.path.join(args.out, f"rank{rank}.pt"))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
