"""Start the app the way the Procfile does, on a free local port, for tests and benchmarks."""
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_command(port):
    """The Procfile's web: command with $PORT filled in and the bind narrowed to loopback."""
    line = next(l for l in (ROOT / "Procfile").read_text().splitlines() if l.startswith("web:"))
    return line.removeprefix("web:").strip().replace("0.0.0.0:$PORT", f"127.0.0.1:{port}")


def wait_until_up(url, timeout):
    """Seconds until GET url answers 200; raises TimeoutError after timeout."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def procfile_server(bin_dir=None, env=None, timeout=60):
    """Run the Procfile's web command; yields (base URL, process, seconds to first answer)."""
    port = free_port()
    environment = {**os.environ, "PORT": str(port), **(env or {})}
    if bin_dir:
        environment["PATH"] = f"{bin_dir}{os.pathsep}{environment['PATH']}"
    process = subprocess.Popen(shlex.split(procfile_command(port)), cwd=ROOT, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        yield base, process, wait_until_up(base + "/healthz", timeout)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def post_image(url, data, content_type="image/jpeg", timeout=10):
    """POST raw image bytes; returns (status, body bytes)."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
