"""Load test against gunicorn started the way the Procfile starts it (127.0.0.1 only, bounded).

    python -m scripts.load_test --clients 8 --seconds 30
    python -m scripts.load_test --clients 32 --seconds 30 --kill-worker-at 10

Prints throughput, errors, p50 / p99 latency, and each worker's RSS before and after the load
(growth should stay under 10%). With --kill-worker-at, one worker is killed with SIGKILL that
many seconds in; gunicorn replaces it, and the failed requests are counted.
"""
import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from tests.support.server import concurrent, gunicorn_master, one_face_photo, percentile, procfile_server


def workers(server_pid):
    """PIDs of the worker processes of the gunicorn master in a started server's process tree."""
    master = gunicorn_master(server_pid)
    return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def rss_mb(pid):
    """Resident memory of one process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(clients, seconds, kill_at=None):
    """Load the server; returns a dict of the figures."""
    photo = one_face_photo()
    with procfile_server() as (base, process, _):
        url = base + "/predict"
        concurrent(url, photo, 2, 2)  # warm-up, so "before" is the steady state
        before = {pid: rss_mb(pid) for pid in workers(process.pid)}
        killed = []
        if kill_at is not None:
            def kill():
                victim = workers(process.pid)[0]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
            threading.Timer(kill_at, kill).start()
        latencies, errors = concurrent(url, photo, clients, seconds)
        after = {pid: rss_mb(pid) for pid in workers(process.pid)}
    survivors = [pid for pid in before if pid in after]
    growth = max(((after[p] - before[p]) / before[p] for p in survivors), default=0.0)
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / seconds,
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "before": before, "after": after, "growth": growth, "killed": killed,
            "replaced": len(after) == len(before)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=8, help="concurrent clients, 8 to 32 (default: 8)")
    p.add_argument("--seconds", type=float, default=30, help="duration, at most 60 (default: 30)")
    p.add_argument("--kill-worker-at", type=float, default=None, help="SIGKILL one worker this many seconds in (default: never)")
    args = p.parse_args()
    if not 1 <= args.clients <= 32 or not 0 < args.seconds <= 60:
        sys.exit("keep the load bounded: 1-32 clients, at most 60 s")
    r = run(args.clients, args.seconds, args.kill_worker_at)
    print(f"{args.clients} clients, {args.seconds:g} s: {r['requests']} requests ({r['rps']:.1f}/s), {r['errors']} errors, "
          f"p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms")
    print("worker RSS before: " + ", ".join(f"{v:.0f} MB" for v in r["before"].values()) +
          "; after: " + ", ".join(f"{v:.0f} MB" for v in r["after"].values()) +
          f"; largest growth of a surviving worker {100 * r['growth']:.1f}%")
    if r["killed"]:
        print(f"killed worker {r['killed'][0]} at {args.kill_worker_at:g} s: {r['errors']} failed requests; "
              f"worker replaced: {r['replaced']}")


if __name__ == "__main__":
    main()
