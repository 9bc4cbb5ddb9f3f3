"""The README's Python example, run as written against the test server.

Every ``python`` code block of README.md marked ``<!-- readme-test: python -->`` is executed
with the README's address (``127.0.0.1:7070``) replaced by the test server's; then what the
example computed is checked, so the README cannot drift from the API.
"""

from __future__ import annotations

import pathlib

import numpy as np

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- readme-test: python -->"
README_ADDRESS = "127.0.0.1:7070"


def marked_blocks(text: str) -> list[str]:
    """The code of each marked ``python`` block, in README order."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        assert lines[i + 1] == "```python", f"README line {i + 1}: marker not before a python block"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        blocks.append("\n".join(lines[i + 2 : end]))
    return blocks


def test_the_readme_python_example_runs_as_written(addr):
    blocks = marked_blocks(README.read_text())
    assert len(blocks) == 1, f"expected one marked python block in README.md, found {len(blocks)}"
    code = blocks[0]
    assert README_ADDRESS in code
    scope: dict = {}
    exec(compile(code.replace(README_ADDRESS, addr), str(README), "exec"), scope)

    ids, rows, out = scope["ids"], scope["rows"], scope["out"]
    assert rows.dtype == np.float32 and rows.shape == (len(ids), 16)
    np.testing.assert_array_equal(out, rows)
    assert rows[0].tolist() == rows[2].tolist()  # the same id, the same row
    assert scope["w"].shape == (64, 32)
    assert "emb" not in [t["name"] for t in scope["c"].tables()]
    assert scope["c"].pull_dense("w").shape == (64, 32)
    scope["c"].drop_dense("w")
