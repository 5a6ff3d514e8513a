"""Start the app the way the Procfile does, on a free local port, for tests and benchmarks."""
import http.client
import io
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.support import ROOT


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
def procfile_server(bin_dir=None, env=None, timeout=60, root=ROOT):
    """Run the Procfile's web command in the checkout at root; yields (base URL, process, seconds to
    first answer). gunicorn is taken from bin_dir, by default the virtualenv running this Python."""
    port = free_port()
    environment = {**os.environ, "PORT": str(port), **(env or {})}
    environment["PATH"] = f"{bin_dir or Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    process = subprocess.Popen(shlex.split(procfile_command(port)), cwd=root, env=environment,
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


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def concurrent(url, photo, clients, seconds):
    """(latencies in ms, error count) with `clients` threads posting for `seconds`."""
    latencies, errors, lock = [], [0], threading.Lock()
    deadline = time.perf_counter() + seconds

    def client():
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                status, _ = post_image(url, photo, timeout=30)
            except (OSError, http.client.HTTPException):  # reset, refused or cut short, e.g. by a killed worker
                status = 0
            with lock:
                latencies.append((time.perf_counter() - t0) * 1e3)
                errors[0] += status != 200

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0]


def group_memory(pid):
    """(summed RSS, summed PSS) in MB over a process and its children."""
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    rss = pss = 0
    for p in pids:
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss / 1024, pss / 1024


def sample_memory(pid, stop, peaks):
    while not stop.is_set():
        rss, pss = group_memory(pid)
        peaks["rss"], peaks["pss"] = max(peaks["rss"], rss), max(peaks["pss"], pss)
        time.sleep(0.2)


def one_face_photo():
    """scikit-image's astronaut (one face), scaled into a 640x480 JPEG."""
    from PIL import Image
    from skimage import data
    canvas = Image.new("RGB", (640, 480), (200, 200, 200))
    canvas.paste(Image.fromarray(data.astronaut()).resize((480, 480)), (80, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
