"""Fixtures: a real ``strata-server dev`` process on an ephemeral port, shared by the whole test run.

The binary is ``$STRATA_SERVER`` if set, else ``strata-server`` in
``${CARGO_TARGET_DIR:-<repo>/target}/debug`` (then ``release``); build it with
``cargo build --bin strata-server``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile
import threading
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60


def server_binary() -> pathlib.Path:
    """The strata-server binary the tests start."""
    explicit = os.environ.get("STRATA_SERVER")
    if explicit:
        return pathlib.Path(explicit)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        candidate = target / profile / "strata-server"
        if candidate.exists():
            return candidate
    pytest.fail(
        f"no strata-server under {target}/debug or release: run `cargo build --bin "
        "strata-server` or set STRATA_SERVER"
    )


class DevServer:
    """A ``strata-server dev`` process; ``addr`` is where it listens."""

    def __init__(self, data_dir: str):
        self.proc = subprocess.Popen(
            [str(server_binary()), "dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.addr = self._wait_ready()
        # Keep draining output so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_ready(self) -> str:
        found = {}

        def read():
            for line in self.proc.stdout:
                if "strata-server dev listening on" in line:
                    found["addr"] = line.strip().rsplit(" ", 1)[-1]
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(READY_TIMEOUT_S)
        if "addr" not in found:
            self.stop()
            pytest.fail(f"strata-server dev did not report its address in {READY_TIMEOUT_S} s")
        return found["addr"]

    def _drain(self):
        for _ in self.proc.stdout:
            pass

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def server():
    """One dev server for the whole test run (tests use tables of their own)."""
    with tempfile.TemporaryDirectory(prefix="strata-pytest-") as data_dir:
        s = DevServer(data_dir)
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture(scope="session")
def addr(server) -> str:
    """The dev server's address."""
    return server.addr


@pytest.fixture
def client(addr):
    """A connected :class:`strata.Client`."""
    import strata

    return strata.Client(addr)


@pytest.fixture
def table_name() -> str:
    """A table name no other test uses."""
    return "t_" + uuid.uuid4().hex[:12]
