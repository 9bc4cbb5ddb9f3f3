"""The DLRM example in its short mode: strata-backed training follows the in-process
torch.nn.EmbeddingBag baseline (loss within 2% at the same steps) and learns the signal."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "dlrm" / "dlrm.py"


def test_dlrm_short_strata_matches_in_process(addr):
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--coordinator", addr, "--short", "--json"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    torch_run, strata_run = result["results"]
    assert torch_run["name"] == "torch.nn.EmbeddingBag"
    assert strata_run["name"] == "strata.torch.EmbeddingBag"
    a, b = np.array(torch_run["curve"]), np.array(strata_run["curve"])
    assert a.shape == b.shape
    # Loss averaged over windows of 10 steps, compared at the same steps.
    wa, wb = a.reshape(-1, 10).mean(1), b.reshape(-1, 10).mean(1)
    assert np.all(np.abs(wb - wa) <= 0.02 * wa), (wa, wb)
    assert abs(strata_run["test_loss"] - torch_run["test_loss"]) <= 0.02 * torch_run["test_loss"]
    # The planted signal is learnt: the loss falls and the AUC is well above chance.
    assert wb[-1] < wb[0] - 0.05
    assert strata_run["auc"] > 0.65
