"""Faults and load against the real gunicorn: bad model files, a killed worker, sustained requests."""
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.load_test import run
from tests.support import ROOT
from tests.support.server import post_image, procfile_command, procfile_server

VENV_BIN = str(Path(sys.executable).parent)


def start_procfile(**settings):
    """Run the Procfile's gunicorn with only these environment variables set; it is expected to stop."""
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", **settings}
    return subprocess.run(procfile_command(0, front=False), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("content,problem", [(None, "model file not found"),
                                             (b"not a model at all", "not a loadable TorchScript model")])
def test_bad_model_file_stops_start_up_with_one_line(tmp_path, content, problem):
    path = tmp_path / "fer.pt"
    if content is not None:
        path.write_bytes(content)
    result = start_procfile(FER_MODEL_PATH=str(path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot start: {path}: {problem}")


def test_the_local_launcher_stops_with_the_app_and_says_why(tmp_path):
    missing = tmp_path / "fer.pt"
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin:/usr/sbin", "PORT": "0", "FER_MODEL_PATH": str(missing)}
    result = subprocess.run([sys.executable, "-m", "scripts.serve", "--host", "127.0.0.1"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: cannot start: {missing}: model file not found")
    assert lines[-1] == "error: the app stopped before it was ready"


@pytest.mark.parametrize("variable,value", [("WEB_CONCURRENCY", "0"), ("GUNICORN_THREADS", "four"),
                                            ("GUNICORN_THREADS", "0"), ("GUNICORN_THREADS", "-2")])
def test_bad_server_setting_stops_start_up_with_one_line(variable, value):
    result = start_procfile(**{variable: value})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: cannot start: {variable} is {value!r}, not a whole number of at least 1"]


@pytest.mark.load
def test_sustained_load_has_no_errors_and_memory_stays_flat():
    r = run(clients=8, seconds=8)
    print(r)
    assert r["errors"] == 0 and r["requests"] > 20
    assert r["growth"] < 0.10


@pytest.mark.load
def test_killed_worker_is_replaced_and_requests_keep_succeeding():
    r = run(clients=8, seconds=8, kill_at=3)
    print(f"{r['errors']} failed of {r['requests']} requests while a worker was killed")
    assert r["killed"] and r["replaced"]
    assert r["requests"] - r["errors"] > 20
    assert r["errors"] <= 8  # at most the requests the killed worker held (4 threads) and a few more


def test_workers_stop_cleanly_with_the_server(astronaut_jpeg):
    """No worker aborts on the way out (onnxruntime's thread from the master: gunicorn.conf.py, worker_exit)."""
    with procfile_server() as (base, process, _):
        assert post_image(base + "/predict", astronaut_jpeg)[0] == 200
    log = process.stderr.read().decode(errors="replace")
    assert "Worker exiting" in log and "Shutting down: Master" in log, log[-2000:]
    assert "SIGABRT" not in log and "terminate called" not in log, log[-2000:]
