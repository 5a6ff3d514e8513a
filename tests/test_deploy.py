"""Do what Heroku does: a fresh virtualenv, requirements.txt, the Procfile's web command, $PORT."""
import json
import os
import subprocess
import sys

import pytest

from server import ROOT, post_image, procfile_server


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("heroku") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_RETRIES": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "requirements.txt")],
                   check=True, env=env, timeout=600)
    return venv / "bin"


def test_procfile_starts_in_a_fresh_virtualenv_and_answers(fresh_venv, astronaut_jpeg):
    with procfile_server(bin_dir=fresh_venv) as (base, process, startup):
        print(f"first answer {startup:.1f} s after start")
        assert startup < 30
        status, body = post_image(base + "/predict", astronaut_jpeg)
        assert status == 200
        assert len(json.loads(body)["faces"]) == 1
        status, body = post_image(base + "/predict", b"not an image")
        assert status == 400 and json.loads(body)["error"]["code"] == "invalid_image"


def test_missing_model_refuses_to_start_with_one_line(fresh_venv, tmp_path):
    missing = tmp_path / "missing.pt"
    env = {**os.environ, "PORT": "0", "FER_MODEL_PATH": str(missing), "PATH": f"{fresh_venv}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", (ROOT / "Procfile").read_text().split("web:", 1)[1]],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [l for l in result.stderr.splitlines() if str(missing) in l]
    assert lines and "model file not found" in lines[0]
