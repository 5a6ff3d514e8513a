"""Start the app the way the Procfile does, on a free local port, for tests and benchmarks."""
import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from scripts.serve import HEROKU_SOCKET, PROXY_LAUNCHER, procfile_words
from tests.support import ROOT


@contextmanager
def earlier_checkout(commit):
    """A temporary git worktree of an earlier commit of this repository, for serving it beside this one."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["git", "worktree", "add", "--detach", folder, commit], cwd=ROOT, check=True, capture_output=True)
        try:
            yield Path(folder)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", folder], cwd=ROOT, capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_command(port, root=ROOT, front=True):
    """The command that serves the Procfile's web process on 127.0.0.1:port, as a list of words.

    With Heroku's nginx launcher in the Procfile, scripts/serve.py plays its part (nginx on the
    port in front of gunicorn); front=False runs gunicorn alone on the port instead, as the
    Procfile did before nginx. An older Procfile's gunicorn is bound to the port."""
    words = procfile_words(root)
    if words[0] == PROXY_LAUNCHER:
        if front:
            return [sys.executable, "-m", "scripts.serve", "--host", "127.0.0.1"]
        words = words[1:]
    return [w.replace(f"unix:{HEROKU_SOCKET}", f"127.0.0.1:{port}").replace("0.0.0.0:$PORT", f"127.0.0.1:{port}")
            for w in words]


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
def procfile_server(bin_dir=None, env=None, timeout=60, root=ROOT, front=True):
    """Run the Procfile's web command in the checkout at root (see procfile_command); yields (base URL,
    process, seconds to first answer). Python and gunicorn are taken from bin_dir, by default the
    virtualenv running this Python."""
    port = free_port()
    bin_dir = Path(bin_dir or Path(sys.executable).parent)
    environment = {**os.environ, "PORT": str(port), **(env or {})}
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment['PATH']}"
    command = procfile_command(port, root, front)
    if command[0] == sys.executable:
        command[0] = str(bin_dir / "python")
    process = subprocess.Popen(command, cwd=root, env=environment,
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


def process_tree(pid):
    """The PIDs of a process and all its descendants (the launcher, nginx, gunicorn and its workers)."""
    pids = [pid]
    for p in pids:
        try:
            pids += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except FileNotFoundError:  # it ended meanwhile
            pass
    return pids


def service_pids(pid):
    """The server's processes: its whole tree, less scripts/serve.py's own Python process, which
    stands in for the buildpack's small shell launcher and is not part of the service on Heroku."""
    pids = process_tree(pid)
    if b"scripts.serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
        pids.remove(pid)
    return pids


def gunicorn_master(pid):
    """The PID of the gunicorn master in a started server's process tree (the first gunicorn from the top)."""
    for p in process_tree(pid):
        if b"gunicorn" in Path(f"/proc/{p}/cmdline").read_bytes():
            return p
    raise LookupError(f"no gunicorn under process {pid}")


def group_memory(pid):
    """(summed RSS, summed PSS) in MB over the server's processes (service_pids)."""
    rss = pss = 0
    for p in service_pids(pid):
        try:
            lines = Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError):  # it ended meanwhile
            continue
        for line in lines:
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


@contextmanager
def slow_clients(address, count, length=100_000):
    """`count` connections that each send a POST's headers to /predict at once (Heroku's router
    buffers headers) and then its body a byte every quarter second; yields their sockets, and
    stops and closes them on leaving."""
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {length}\r\n\r\n"
    sockets = [socket.create_connection(address, timeout=5) for _ in range(count)]
    for sock in sockets:
        sock.sendall(head.encode())
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.25):
            for sock in sockets:
                try:
                    sock.send(b"\0")
                except OSError:
                    pass
    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join()
        for sock in sockets:
            sock.close()
