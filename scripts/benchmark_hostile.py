"""Hostile uploads against the Procfile's server: memory, CPU per request and throughput, before and after.

    python -m scripts.benchmark_hostile                       # this checkout only (about 2 minutes)
    python -m scripts.benchmark_hostile --before 1bbba47      # and the server of an earlier commit beside it

Both servers run at once (the earlier one from a temporary git worktree) and take turns, so that a
busy machine slows them alike.
1. Memory: two of the worst legal images sent at once while 4 clients post a 640x480 one-face photo:
   peak PSS of all the server's processes and the statuses. The pairs: issue 17's (a 40-megapixel
   16-bit PNG and a palette PNG with transparency) and two 40-megapixel RGB PNGs (Pillow holds RGB
   at 4 bytes a pixel, which makes them the costliest legal PNG now).
2. CPU: each hostile upload alone: wall time and the CPU seconds the server's processes spent on it.
3. Slow clients: p50 of one client posting the one-face photo, alone and with 12 clients connected
   that send a byte every quarter second, and the errors with them.
4. Throughput: `--clients` clients post the one-face photo for `--seconds`: requests/s, p50, p99,
   errors, and the ratio to the ceiling (the cores divided by the CPU seconds of one request).
`--gunicorn-alone` adds this checkout's gunicorn without nginx in front, as the Procfile ran it before.
"""
import argparse
import os
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from tests.support import ROOT
from tests.support.images import encode, oriented
from tests.support.server import (concurrent, earlier_checkout, one_face_photo, percentile, post_image, procfile_server, sample_memory,
                                  service_pids, slow_clients)

SIDE = (6000, 6600)  # 39.6 megapixels, under the 40-megapixel limit


def hostile_images():
    """{name: (bytes, content type)} of uploads that are legal but costly to decode."""
    width, height = SIDE
    ramp = (np.arange(width, dtype=np.uint16) * 9)[None, :].repeat(height, axis=0)
    palette = Image.new("P", SIDE)
    palette.putpalette([i % 256 for i in range(768)])
    scans = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    many = [encode(np.full((1250, 2000, 3), 120, np.uint8), "PNG", compress_level=1)] * 16
    return {
        "16-bit PNG, 40 MP": (encode(Image.fromarray(ramp), "PNG", compress_level=1), "image/png"),
        "RGB PNG, 40 MP": (encode(np.full((height, width, 3), 120, np.uint8), "PNG", compress_level=1), "image/png"),
        "palette PNG with transparency, 40 MP": (encode(palette, "PNG", compress_level=1, transparency=0), "image/png"),
        "EXIF-turned JPEG, 40 MP": (oriented(np.full((height, width, 3), 120, np.uint8), 6, "JPEG"), "image/jpeg"),
        "JPEG with 5,000 scans": (scan_bomb(scans), "image/jpeg"),
        "16 PNGs of 2.5 MP in one request": multipart(many),
    }


def scan_bomb(image):
    """A progressive JPEG whose scans are repeated until it holds about 5,000."""
    data = encode(image, "JPEG", progressive=True)
    first, last = data.index(b"\xff\xda"), data.rindex(b"\xff\xd9")
    return data[:first] + data[first:last] * (5000 // max(1, data.count(b"\xff\xda"))) + data[last:]


def multipart(files):
    """(body, content type) of a multipart form with each file in an `image` field."""
    boundary = "hostile-benchmark"
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{i}.png\"\r\n"
             f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for i, data in enumerate(files)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def cpu_seconds(pid):
    """User + system CPU seconds of the server's processes (nginx's too) so far."""
    ticks = 0
    for p in service_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


PAIRS = {"16-bit + palette PNG": ("16-bit PNG, 40 MP", "palette PNG with transparency, 40 MP"),
         "two RGB PNGs": ("RGB PNG, 40 MP", "RGB PNG, 40 MP")}


def worst_pair(url, pid, pair, photo):
    """(peak PSS MB, statuses of the two large uploads, errors of the normal traffic) with both at once."""
    stop, peaks, statuses = threading.Event(), {"rss": 0.0, "pss": 0.0}, []
    sampler = threading.Thread(target=sample_memory, args=(pid, stop, peaks))
    sampler.start()
    normal = {}
    traffic = threading.Thread(target=lambda: normal.update(result=concurrent(url, photo, 4, 12)))
    traffic.start()
    time.sleep(1)
    senders = [threading.Thread(target=lambda d=d, t=t: statuses.append(post_image(url, d, t, timeout=60)[0]))
               for d, t in pair]
    for s in senders:
        s.start()
    for s in senders + [traffic]:
        s.join()
    stop.set()
    sampler.join()
    return peaks["pss"], sorted(statuses), normal["result"][1]


def one_cost(url, pid, data, content_type):
    """(HTTP status, wall seconds, server CPU seconds) of one upload sent alone."""
    cpu, t0 = cpu_seconds(pid), time.perf_counter()
    status, _ = post_image(url, data, content_type, timeout=60)
    wall = time.perf_counter() - t0
    time.sleep(0.3)  # let the worker finish its bookkeeping before CPU is read again
    return status, wall, cpu_seconds(pid) - cpu


def throughput(url, pid, photo, clients, seconds):
    """Requests/s, p50, p99, errors and the ratio to the ceiling."""
    cpu, wall = cpu_seconds(pid), 0.0
    for _ in range(20):  # CPU per request, one client
        t0 = time.perf_counter()
        post_image(url, photo)
        wall += time.perf_counter() - t0
    per_request = (cpu_seconds(pid) - cpu) / 20
    latencies, errors = concurrent(url, photo, clients, seconds)
    rate = len(latencies) / seconds
    ceiling = (os.cpu_count() or 1) / per_request
    return rate, percentile(latencies, 50), percentile(latencies, 99), errors, rate / ceiling, ceiling


def slow_client_cost(url, photo, requests=30, count=12):
    """(p50 ms alone, p50 ms with `count` slow clients connected, errors with them)."""
    def p50_and_errors():
        latencies, errors = [], 0
        for _ in range(requests):
            t0 = time.perf_counter()
            try:
                status, _ = post_image(url, photo, timeout=5)
            except OSError:
                status = 0
            latencies.append((time.perf_counter() - t0) * 1e3)
            errors += status != 200
        return percentile(latencies, 50), errors
    alone, _ = p50_and_errors()
    address = urlsplit(url)
    with slow_clients((address.hostname, address.port), count):
        time.sleep(1)
        with_slow, errors = p50_and_errors()
    return alone, with_slow, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="also serve this earlier commit, from a temporary git worktree")
    parser.add_argument("--gunicorn-alone", action="store_true", help="also serve this checkout with gunicorn alone, no nginx in front")
    parser.add_argument("--sections", default="memory,cpu,slow,throughput",
                        help="comma-separated sections to run (default: memory,cpu,slow,throughput)")
    parser.add_argument("--clients", type=int, default=32, help="clients of the throughput run (default: 32)")
    parser.add_argument("--seconds", type=float, default=30, help="length of the throughput run (default: 30)")
    args = parser.parse_args()
    images, photo = hostile_images(), one_face_photo()
    with ExitStack() as stack:
        roots = {"now": ROOT}
        if args.before:
            roots = {f"before ({args.before})": stack.enter_context(earlier_checkout(args.before)), **roots}
        servers = {name: stack.enter_context(procfile_server(root=root)) for name, root in roots.items()}
        if args.gunicorn_alone:
            servers["now, gunicorn alone"] = stack.enter_context(procfile_server(front=False))
        sections = args.sections.split(",")
        print("1. Two 40-megapixel images at once beside 4 clients: peak PSS of all processes, statuses, errors")
        for label, names in PAIRS.items() if "memory" in sections else ():
            for name, (base, process, _) in servers.items():
                pss, statuses, errors = worst_pair(base + "/predict", process.pid, [images[n] for n in names], photo)
                print(f"  {label:22s} {name:24s} {pss:6.0f} MB   {statuses}   {errors} errors in the normal traffic")
        print("2. Each hostile upload alone: status, wall seconds, server CPU seconds")
        for label, (data, content_type) in images.items() if "cpu" in sections else ():
            for name, (base, process, _) in servers.items():
                status, wall, cpu = one_cost(base + "/predict", process.pid, data, content_type)
                print(f"  {label:36s} {name:24s} {status}  {wall:5.2f} s  CPU {cpu:5.2f} s")
        print("3. One client, alone and beside 12 slow clients: p50, ratio, errors beside them (timeout 5 s)")
        for name, (base, process, _) in servers.items() if "slow" in sections else ():
            alone, with_slow, errors = slow_client_cost(base + "/predict", photo)
            print(f"  {name:24s} p50 {alone:5.1f} ms alone, {with_slow:7.1f} ms beside them "
                  f"({with_slow / alone:.2f}x), {errors} errors of 30")
        print(f"4. {args.clients} clients for {args.seconds:g} s, the one-face photo")
        for name, (base, process, _) in servers.items() if "throughput" in sections else ():
            rate, p50, p99, errors, ratio, ceiling = throughput(base + "/predict", process.pid, photo,
                                                               args.clients, args.seconds)
            print(f"  {name:24s} {rate:6.1f} requests/s  p50 {p50:5.0f} ms  p99 {p99:5.0f} ms  {errors} errors  "
                  f"{ratio:.2f} of the ceiling ({ceiling:.0f}/s)")


if __name__ == "__main__":
    main()
