"""Benchmark the served app end to end, started the way the Procfile starts it.

    python scripts/benchmark_app.py                 # about 1 minute

1. One worker (WEB_CONCURRENCY=1), one client: p50 / p95 of POST /predict for a 640x480 JPEG
   with one face, and the server's own split into decode, detect and classify.
2. The same worker with 8 concurrent clients for 20 s: throughput, errors, p50 / p99.
   Steps 1 and 2 run for the default detector (BlazeFace) and for FER_DETECTOR=haar.
3. The default Procfile configuration (2 preloaded workers) under 8 clients: peak memory of
   all its processes, as summed RSS and as summed PSS (shared pages counted once, closer to
   what a dyno's memory limit sees).
"""
import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from server import (concurrent, group_memory, one_face_photo, percentile, post_image,  # noqa: E402
                    procfile_server, sample_memory)


def sequential(url, photo, n):
    """Latencies in ms and the server's timing splits for n requests, one at a time."""
    latencies, splits = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        status, body = post_image(url, photo)
        latencies.append((time.perf_counter() - t0) * 1e3)
        assert status == 200, body
        result = json.loads(body)
        assert len(result["faces"]) == 1, result
        splits.append(result["timing_ms"])
    return latencies, splits


# The default detector, and the other one the app can be started with.
VARIANTS = {"default detector (BlazeFace)": {}, "FER_DETECTOR=haar (Haar cascade)": {"FER_DETECTOR": "haar"}}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200, help="sequential requests (default: 200)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    p.add_argument("--seconds", type=float, default=20, help="length of the concurrent run (default: 20)")
    args = p.parse_args()
    photo = one_face_photo()

    p50 = {}
    for name, env in VARIANTS.items():
        with procfile_server(env={"WEB_CONCURRENCY": "1", **env}) as (base, process, startup):
            url = base + "/predict"
            sequential(url, photo, 10)  # warm-up
            latencies, splits = sequential(url, photo, args.requests)
            p50[name] = percentile(latencies, 50)
            print(f"{name}: start-up to first answer {startup:.2f} s")
            print(f"  1 worker, 1 client, {args.requests} requests, 640x480 JPEG with one face:")
            print(f"  end to end   p50 {p50[name]:6.1f} ms   p95 {percentile(latencies, 95):6.1f} ms")
            for part in ("decode", "detect", "classify"):
                values = [s[part] for s in splits]
                print(f"  {part:12s} p50 {percentile(values, 50):6.1f} ms   p95 {percentile(values, 95):6.1f} ms")
            latencies, errors = concurrent(url, photo, args.clients, args.seconds)
            print(f"  1 worker, {args.clients} clients, {args.seconds:g} s: {len(latencies) / args.seconds:.1f} requests/s, "
                  f"{errors} errors, p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms")
    default, other = list(p50)
    print(f"p50 of {default} is {p50[default] / p50[other]:.2f}x that of {other}")

    with procfile_server() as (base, process, startup):
        stop, peaks = threading.Event(), {"rss": 0.0, "pss": 0.0}
        idle_rss, idle_pss = group_memory(process.pid)
        sampler = threading.Thread(target=sample_memory, args=(process.pid, stop, peaks))
        sampler.start()
        latencies, errors = concurrent(base + "/predict", photo, args.clients, args.seconds)
        stop.set()
        sampler.join()
        print(f"Procfile defaults (2 workers x 4 threads, preload), {args.clients} clients, {args.seconds:g} s: "
              f"{len(latencies) / args.seconds:.1f} requests/s, {errors} errors, p50 {percentile(latencies, 50):.1f} ms")
        print(f"  memory of all processes: idle RSS {idle_rss:.0f} MB (PSS {idle_pss:.0f} MB); "
              f"peak under load RSS {peaks['rss']:.0f} MB (PSS {peaks['pss']:.0f} MB)")


if __name__ == "__main__":
    main()
