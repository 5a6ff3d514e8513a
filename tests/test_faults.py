"""Faults and load against the real gunicorn: bad model files, a killed worker, sustained requests."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from load_test import run  # noqa: E402
from server import ROOT, procfile_command  # noqa: E402

VENV_BIN = str(Path(sys.executable).parent)


def start_with_model(model_path):
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "FER_MODEL_PATH": str(model_path)}
    return subprocess.run(procfile_command(0), shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("content,problem", [(None, "model file not found"),
                                             (b"not a model at all", "not a loadable TorchScript model")])
def test_bad_model_file_stops_start_up_with_one_line(tmp_path, content, problem):
    path = tmp_path / "fer.pt"
    if content is not None:
        path.write_bytes(content)
    result = start_with_model(path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot start: {path}: {problem}")


def test_sustained_load_has_no_errors_and_memory_stays_flat():
    r = run(clients=8, seconds=8)
    print(r)
    assert r["errors"] == 0 and r["requests"] > 20
    assert r["growth"] < 0.10


def test_killed_worker_is_replaced_and_requests_keep_succeeding():
    r = run(clients=8, seconds=8, kill_at=3)
    print(f"{r['errors']} failed of {r['requests']} requests while a worker was killed")
    assert r["killed"] and r["replaced"]
    assert r["requests"] - r["errors"] > 20
    assert r["errors"] <= 8  # at most the requests the killed worker held (4 threads) and a few more
