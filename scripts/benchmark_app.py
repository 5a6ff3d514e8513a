"""Benchmark the served app end to end, started the way the Procfile starts it.

    python -m scripts.benchmark_app                 # about 2 minutes
    python -m scripts.benchmark_app --before d9117a0^   # and an earlier commit's server beside it

Every variant's server runs at once and they take turns, request by request or slice by slice,
so that a busy machine slows them alike.
1. One worker (WEB_CONCURRENCY=1), one client: p50 / p95 of POST /predict for a 640x480 JPEG
   with one face, and the server's own split into decode, detect and classify.
2. The same worker with 8 concurrent clients for 20 s: throughput, errors, p50 / p99.
   Steps 1 and 2 run for the default (BlazeFace, one OpenCV thread), for two OpenCV threads
   (OPENCV_FOR_THREADS_NUM=2), for FER_DETECTOR=haar and, with --before, for an earlier commit
   served from a temporary git worktree with this checkout's Python environment.
3. The default Procfile configuration (2 preloaded workers) under 8 clients, and the earlier
   commit's: throughput, and peak memory of all processes, as summed RSS and as summed PSS
   (shared pages counted once, closer to what a dyno's memory limit sees).
"""
import argparse
import json
import threading
import time
from contextlib import ExitStack

from tests.support import ROOT
from tests.support.server import (concurrent, earlier_checkout, group_memory, one_face_photo, percentile, post_image,
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


# The default, two OpenCV threads (as before gunicorn.conf.py chose one), and the other detector.
VARIANTS = {"default (BlazeFace, 1 OpenCV thread)": {},
            "OPENCV_FOR_THREADS_NUM=2": {"OPENCV_FOR_THREADS_NUM": "2"},
            "FER_DETECTOR=haar (Haar cascade)": {"FER_DETECTOR": "haar"}}


def servers(stack, variants, before=None, **env):
    """{variant: (predict URL, process, start-up seconds)} for servers started in an ExitStack; with
    `before`, the default configuration of that commit too."""
    roots = {name: (ROOT, extra) for name, extra in variants.items()}
    if before:
        roots[f"before ({before})"] = (stack.enter_context(earlier_checkout(before)), {})
    started = {}
    for name, (root, extra) in roots.items():
        base, process, startup = stack.enter_context(procfile_server(env={**env, **extra}, root=root))
        started[name] = (base + "/predict", process, startup)
    return started


def in_turns(started, photo, clients, seconds, turns=4):
    """{variant: (latencies, errors)} of `clients` concurrent clients, the variants taking turns in slices."""
    results = {name: ([], 0) for name in started}
    for _ in range(turns):
        for name, (url, _, _) in started.items():
            latencies, errors = concurrent(url, photo, clients, seconds / turns)
            results[name] = (results[name][0] + latencies, results[name][1] + errors)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200, help="sequential requests per variant (default: 200)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    p.add_argument("--seconds", type=float, default=20, help="length of each variant's concurrent run (default: 20)")
    p.add_argument("--before", help="also serve this earlier commit, from a temporary git worktree")
    args = p.parse_args()
    photo = one_face_photo()

    with ExitStack() as stack:
        started = servers(stack, VARIANTS, args.before, WEB_CONCURRENCY="1")
        runs = {name: ([], []) for name in started}
        for name, (url, _, _) in started.items():
            sequential(url, photo, 10)  # warm-up
        for _ in range(args.requests):
            for name, (url, _, _) in started.items():
                latencies, splits = sequential(url, photo, 1)
                runs[name][0].extend(latencies)
                runs[name][1].extend(splits)
        loaded = in_turns(started, photo, args.clients, args.seconds)
        p50 = {}
        for name, (latencies, splits) in runs.items():
            p50[name] = percentile(latencies, 50)
            print(f"{name}: start-up to first answer {started[name][2]:.2f} s")
            print(f"  1 worker, 1 client, {args.requests} requests, 640x480 JPEG with one face:")
            print(f"  end to end   p50 {p50[name]:6.1f} ms   p95 {percentile(latencies, 95):6.1f} ms")
            for part in ("decode", "detect", "classify"):
                values = [s[part] for s in splits]
                print(f"  {part:12s} p50 {percentile(values, 50):6.1f} ms   p95 {percentile(values, 95):6.1f} ms")
            latencies, errors = loaded[name]
            print(f"  1 worker, {args.clients} clients, {args.seconds:g} s: {len(latencies) / args.seconds:.1f} requests/s, "
                  f"{errors} errors, p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms")
        default, *others = p50
        for other in others:
            print(f"p50 of {default} is {p50[default] / p50[other]:.2f}x that of {other}")

    with ExitStack() as stack:
        started = servers(stack, dict(list(VARIANTS.items())[:1]), args.before)
        stop, samplers, idle, peaks = threading.Event(), [], {}, {}
        for name, (_, process, _) in started.items():
            idle[name], peaks[name] = group_memory(process.pid), {"rss": 0.0, "pss": 0.0}
            samplers.append(threading.Thread(target=sample_memory, args=(process.pid, stop, peaks[name])))
            samplers[-1].start()
        loaded = in_turns(started, photo, args.clients, args.seconds)
        stop.set()
        for sampler in samplers:
            sampler.join()
        for name, (latencies, errors) in loaded.items():
            print(f"Procfile defaults (2 workers x 4 threads, preload), {name}, {args.clients} clients, {args.seconds:g} s: "
                  f"{len(latencies) / args.seconds:.1f} requests/s, {errors} errors, p50 {percentile(latencies, 50):.1f} ms")
            print(f"  memory of all its processes: idle RSS {idle[name][0]:.0f} MB (PSS {idle[name][1]:.0f} MB); "
                  f"peak under load RSS {peaks[name]['rss']:.0f} MB (PSS {peaks[name]['pss']:.0f} MB)")


if __name__ == "__main__":
    main()
