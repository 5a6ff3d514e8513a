"""Time the batch analysis (python -m recognition.analyze) against the targets of issue 15.

    python -m scripts.benchmark_analysis                 # 600 photos, a 1-minute 720p video, Ray against local
    python -m scripts.benchmark_analysis --no-ray --photos 200

Prints, for the local engine with --workers processes: photos per second (640x480 JPEGs, one face
each) and how much faster than real time a 1-minute 720p 30 fps video is analysed at 5 fps; then
the Ray engine's time on this machine against the local engine's on the photos and the video
together. Each figure is given whole and after start-up (starting the processes and loading the
model in each), which a run on a few photos measures. The load average is printed with them:
another busy process on the machine slows every figure.
"""
import argparse
import os
import tempfile
import time
from math import nan
from pathlib import Path

from modelfile import DEFAULT_PATH
from recognition.analyze import analyze
from recognition.batch import Job
from recognition.batch import IMAGES_PER_TASK
from scripts.analysis_media import write_photos, write_video


def cpu_seconds():
    """CPU time of this process and of its finished children (the local engine's workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed(inputs, out, job, **kwargs):
    """(wall seconds, CPU seconds of the local engine's processes) of one analysis, start-up included."""
    start, cpu = time.perf_counter(), cpu_seconds()
    _, skipped, _ = analyze([str(p) for p in inputs], out, job, progress=False, **kwargs)
    assert not skipped, skipped
    return time.perf_counter() - start, cpu_seconds() - cpu


def verdict(value, target, higher_is_better=True):
    """'met' or 'missed' against a target."""
    return "met" if (value >= target if higher_is_better else value <= target) else "missed"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=600, help="photos in the folder (default: 600)")
    parser.add_argument("--video-seconds", type=float, default=60, help="length of the 720p video (default: 60)")
    parser.add_argument("--workers", type=int, default=2, help="local processes and Ray CPUs (default: 2)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine (default: run it)")
    args = parser.parse_args()
    job = Job(str(DEFAULT_PATH))
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="fer-bench-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        photos = write_photos(tmp / "photos", args.photos)
        video = write_video(tmp / "video.mp4", args.video_seconds, fps=30, size=(1280, 720), faces=1)
        print(f"media made in {time.perf_counter() - start:.1f} s: {args.photos} photos 640x480, "
              f"{args.video_seconds:g} s of 1280x720 at 30 fps")
        out = tmp / "out.csv"
        local = {"workers": args.workers}
        few = photos[:args.workers * IMAGES_PER_TASK]  # a task for each process: the same start-up as the folder's
        small, small_cpu = timed(few, out, job, **local)
        folder, folder_cpu = timed([tmp / "photos"], out, job, **local)
        clip, clip_cpu = timed([video], out, job, **local)
        rate, rate_after = args.photos / folder, (args.photos - len(few)) / max(1e-9, folder - small)
        startup = max(0.0, small - len(few) / rate_after)
        # (a video of one 10 s part runs in this process, without the pool's start-up: nan then)
        speed, speed_after = args.video_seconds / clip, args.video_seconds / (clip - startup) if clip > startup else nan
        # CPU time counts the work whatever else the machine runs: cores / CPU per item is the rate idle cores allow.
        photo_cpu = (folder_cpu - small_cpu) / (args.photos - len(few))
        video_cpu = clip_cpu - (small_cpu - len(few) * photo_cpu)  # less the processes' start-up
        print(f"start-up ({args.workers} processes, from {len(few)} and {args.photos} photos): {startup:.2f} s")
        print(f"photos: {args.photos} in {folder:.2f} s = {rate:.0f}/s whole, {rate_after:.0f}/s after start-up "
              f"(target >= 150/s: {verdict(rate_after, 150)}); CPU {1e3 * photo_cpu:.1f} ms a photo, "
              f"so at most {args.workers / photo_cpu:.0f}/s on {args.workers} idle cores")
        print(f"video: {args.video_seconds:g} s of 720p in {clip:.2f} s = {speed:.1f}x real time whole, "
              f"{speed_after:.1f}x after start-up (target >= 10x: {verdict(speed_after, 10)}); CPU {video_cpu:.1f} s "
              f"after start-up, so at most {args.workers * args.video_seconds / video_cpu:.1f}x on idle cores")
        if not args.no_ray:
            import ray
            # Ray starts its workers at niceness 15, below the local engine's processes: on a busy
            # machine that would time the scheduler's preference rather than Ray's overhead.
            os.environ.setdefault("RAY_worker_niceness", "0")
            start = time.perf_counter()
            ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            print(f"Ray start (once per cluster, not counted below): {time.perf_counter() - start:.1f} s")
            both = [tmp / "photos", video]
            local_both, _ = timed(both, out, job, **local)
            ray_both, _ = timed(both, out, job, engine="ray")
            ray.shutdown()
            print(f"photos + video: local {local_both:.2f} s, Ray {ray_both:.2f} s = {ray_both / local_both:.2f}x "
                  f"(target <= 1.5x: {verdict(ray_both / local_both, 1.5, higher_is_better=False)})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
