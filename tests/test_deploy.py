"""Do what Heroku does: a fresh virtualenv, requirements.txt, the Procfile's web command, $PORT."""
import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT
from tests.support.server import post_image, procfile_command, procfile_server, procfile_words


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("heroku") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_RETRIES": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "requirements.txt")],
                   check=True, env=env, timeout=600)
    return venv / "bin"


@pytest.mark.network
def test_procfile_starts_in_a_fresh_virtualenv_and_answers(fresh_venv, astronaut_jpeg):
    with procfile_server(bin_dir=fresh_venv) as (base, process, startup):
        print(f"first answer {startup:.1f} s after start")
        assert startup < 30
        status, body = post_image(base + "/predict", astronaut_jpeg)
        assert status == 200
        assert len(json.loads(body)["faces"]) == 1
        status, body = post_image(base + "/predict", b"not an image")
        assert status == 400 and json.loads(body)["error"]["code"] == "invalid_image"


@pytest.mark.network
def test_missing_model_refuses_to_start_with_one_line(fresh_venv, tmp_path):
    missing = tmp_path / "missing.pt"
    env = {**os.environ, "PORT": "0", "FER_MODEL_PATH": str(missing), "PATH": f"{fresh_venv}:{os.environ['PATH']}"}
    result = subprocess.run(procfile_command(0, front=False), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [l for l in result.stderr.splitlines() if str(missing) in l]
    assert lines and "model file not found" in lines[0]


# Heroku's Python buildpack cannot be run here, so the files it reads are checked against its
# documented rules: https://devcenter.heroku.com/articles/python-runtimes (the Python version),
# https://devcenter.heroku.com/articles/app-json-schema (app.json).

def test_python_version_file_names_only_a_major_version_and_nothing_overrides_it():
    lines = [l.strip() for l in (ROOT / ".python-version").read_text().splitlines()]
    versions = [l for l in lines if l and not l.startswith("#")]
    assert len(versions) == 1, "the buildpack wants exactly one version line"
    parts = versions[0].split(".")
    # N.N gets every security patch; an exact N.N.N pin stops building once the stack moves on.
    assert len(parts) == 2 and all(p.isdigit() for p in parts), f"{versions[0]!r} is not of the form 3.N"
    assert int(parts[0]) == 3 and int(parts[1]) >= 9, "the buildpack builds Python 3.9 and newer"
    assert not (ROOT / "runtime.txt").exists(), "runtime.txt is deprecated and would win over .python-version"


def test_procfile_web_command_is_nginx_in_front_of_gunicorn_with_its_config():
    words = procfile_words()
    assert len([l for l in (ROOT / "Procfile").read_text().splitlines() if l.startswith("web:")]) == 1
    # Heroku's nginx buildpack: its launcher, then the app server on the socket its nginx.conf proxies to.
    assert words[:2] == ["bin/start-nginx", "gunicorn"]
    assert words[words.index("--bind") + 1] == "unix:/tmp/nginx.socket"
    config = words[words.index("--config") + 1]
    assert config == "gunicorn.conf.py" and (ROOT / config).is_file()
    template = (ROOT / "config" / "nginx.conf.erb").read_text()
    assert '<%= ENV["PORT"] %>' in template and "/tmp/nginx.socket" in template
    buildpacks = [b["url"] for b in json.loads((ROOT / "app.json").read_text())["buildpacks"]]
    assert buildpacks == ["heroku/python", "heroku-community/nginx"], "nginx's buildpack comes last"


def test_gunicorn_tells_the_nginx_launcher_when_it_is_ready_and_only_behind_it(tmp_path, monkeypatch):
    import runpy
    when_ready = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["when_ready"]
    ready = tmp_path / "app-initialized"
    monkeypatch.setenv("FER_READY_FILE", str(ready))

    class Server:
        class cfg:
            bind = ["127.0.0.1:8000"]
    when_ready(Server)
    assert not ready.exists()
    Server.cfg.bind = ["unix:/tmp/nginx.socket"]
    when_ready(Server)
    assert ready.exists()


def test_nginx_body_limits_sit_just_above_the_apps_own():
    from web.settings import DEFAULTS
    template = (ROOT / "config" / "nginx.conf.erb").read_text()

    def megabytes(block, directive):
        return float(block.split(directive + " ")[1].split("m;")[0])
    for opening, app_limit in (("location / {", DEFAULTS["MAX_UPLOAD_MB"]),
                               ("location = /predict/video {", DEFAULTS["MAX_VIDEO_MB"])):
        block = template.split(opening, 1)[1].split("}", 1)[0]
        cap = megabytes(block, "client_max_body_size")
        # the app answers its own limits with the exact message; nginx's caps only bound its memory
        assert app_limit < cap <= app_limit + 2
        assert megabytes(block, "client_body_buffer_size") >= cap, "a body larger than the buffer would be written to disk"


def test_requirements_take_torch_from_the_cpu_wheel_index():
    lines = [l.split("#")[0].strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    # PyPI's Linux torch brings CUDA libraries that burst Heroku's 500 MB slug limit.
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    torch = [l for l in lines if l.startswith("torch==")]
    assert len(torch) == 1 and torch[0].endswith("+cpu"), torch
    assert any(l.startswith("gunicorn==") for l in lines), "the Procfile's server must be installed"


def app_sources():
    """The text of every Python file the web app is made of: not tests, training or scripts."""
    skip = {"tests", "training", "scripts", "runs"}
    files = []
    for entry in ROOT.iterdir():
        if entry.suffix == ".py":
            files.append(entry)
        elif entry.is_dir() and entry.name not in skip and not entry.name.startswith("."):
            files.extend(entry.rglob("*.py"))
    return "\n".join(f.read_text() for f in files)


def test_app_json_names_only_settings_the_app_reads():
    manifest = json.loads((ROOT / "app.json").read_text())
    assert manifest["formation"]["web"]["quantity"] >= 1
    source = app_sources()
    for name, spec in manifest["env"].items():
        assert f'"{name}"' in source or f"'{name}'" in source, f"app.json names {name}, which the app never reads"
        assert spec["description"] and spec["required"] is False


def test_app_json_values_are_the_apps_own_defaults(monkeypatch):
    from app import create_app
    env = json.loads((ROOT / "app.json").read_text())["env"]
    for name in env:
        monkeypatch.delenv(name, raising=False)
    defaults = dict(create_app({"TESTING": True}).config)
    for name, spec in env.items():
        monkeypatch.setenv(name, spec["value"])
    assert dict(create_app({"TESTING": True}).config) == defaults
