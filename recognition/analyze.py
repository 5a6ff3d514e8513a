"""Analyse images, folders and videos into one table: a row per face per image or sampled frame.

    python -m recognition.analyze photos/ interview.mp4 --out results.csv --plot plots/
    python -m recognition.analyze videos/ --out results.jsonl --engine ray --address auto

Columns: source, frame, time_s, track, x, y, w, h, one per emotion, dominant_emotion (see
docs/analysis.md). A file that cannot be read is named on stderr and skipped; --resume skips
the sources already in the output.
"""
import argparse
import os
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from modelfile import DEFAULT_PATH
from recognition.batch import Collector, Job, columns, find_sources, plan_units
from recognition.classifier import ModelError, load_model_file
from recognition.faces import DETECTORS
from recognition.report import plot_path, plot_timeline, summary_table, write_summary
from recognition.tables import TableError, TableWriter, done_sources, table_format
from recognition.tracking import track_summaries

ENGINES = ("local", "ray")


def results(job, units, engine, workers, address):
    """The engine's results for the units, one per unit, in order."""
    if not units:
        return iter(())
    if engine == "ray":
        from recognition.engine_ray import ray_results  # Ray is installed for the batch path only
        return ray_results(job, units, address)
    from recognition.engine_local import local_results
    return local_results(job, units, workers)


def completed(unit_results, collector, bar, expected):
    """(source, rows, error) of each source once its last unit is in; the progress bar moves on every unit."""
    for result in unit_results:
        bar.update(expected[(result["source"], result["start"])])
        finished = collector.add(result)
        if finished:
            yield finished


def analyze(inputs, out, job, engine="local", workers=1, address=None, smooth=1, plot=None, resume=False,
            progress=True):
    """Run one analysis into `out`; returns (sources written, {source: why it was skipped}, track summaries)."""
    labels = load_model_file(job.model, fusion=False).labels
    header = columns(labels)
    done = done_sources(out, header) if resume else set()
    sources = [s for s in find_sources(inputs) if s not in done]
    units = plan_units(sources, job.fps)
    expected = {(u.source, u.start): u.frames for u in units}
    collector = Collector(units, labels, smooth)
    unit_results = results(job, units, engine, workers, address)  # before the output is opened: Ray connects here
    if plot:
        Path(plot).mkdir(parents=True, exist_ok=True)
    writer = TableWriter(out, header, append=resume)
    written, skipped, summaries = [], {}, []
    bar = tqdm(total=round(sum(expected.values())), unit="frame", desc="images and video frames",
               disable=not progress, file=sys.stderr, smoothing=0.1)
    try:
        for source, rows, error in completed(unit_results, collector, bar, expected):
            if error:
                skipped[source] = error
                bar.write(f"skipped {source}: {error}", file=sys.stderr)
                continue
            writer.write(rows)
            written.append(source)
            if rows[0]["track"] is not None:
                summaries.extend(track_summaries(rows, labels))
                if plot:
                    plot_timeline(rows, labels, plot_path(plot, source))
    finally:
        bar.close()
        writer.close()
    if plot:
        write_summary(summaries, labels, Path(plot) / "summary.csv")
        if summaries:
            print(summary_table(summaries, labels))
    return written, skipped, summaries


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m recognition.analyze", description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image, video (mp4, mov, avi, webm, mkv) or folder")
    parser.add_argument("--out", required=True, help="results file: .csv or .jsonl")
    parser.add_argument("--fps", type=float, default=5.0, help="video frames sampled per second (default: 5)")
    parser.add_argument("--smooth", type=int, default=1,
                        help="average each face's probabilities over this many samples of its track (default: 1, none)")
    parser.add_argument("--plot", metavar="DIR",
                        help="write a timeline PNG per video and summary.csv here (default: none)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the output and skip the sources in it (default: off)")
    parser.add_argument("--engine", choices=ENGINES, default="local", help="where to run (default: local)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="local engine: processes (default: the number of CPUs)")
    parser.add_argument("--address", help="ray engine: the cluster to join, e.g. auto or ray://head:10001 "
                        "(default: start Ray on this machine)")
    parser.add_argument("--model", default=str(DEFAULT_PATH), help="model file (default: model/fer.pt)")
    parser.add_argument("--detector", choices=list(DETECTORS), default="blazeface",
                        help="face detector (default: blazeface)")
    parser.add_argument("--video-tiles", action="store_true",
                        help="search video frames over 1024 px in corner tiles too, as photos are: smaller faces, "
                        "5x the detection time (default: off)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown)")
    args = parser.parse_args(argv)
    if args.fps <= 0 or args.smooth < 1 or args.workers < 1:
        parser.error("--fps must be above 0, --smooth and --workers at least 1")
    try:
        table_format(args.out)
    except TableError as e:
        parser.error(str(e))
    return args


def main(argv=None):
    """Run the command; exit 1 with one line if the model or the output cannot be used."""
    args = parse_args(argv)
    # The command names each file it cannot read; OpenCV's and FFmpeg's own warnings would only
    # repeat it (the environment reaches the worker processes, setLogLevel this one).
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    job = Job(args.model, args.detector, args.fps, args.video_tiles)
    try:
        written, skipped, _ = analyze(args.inputs, args.out, job, args.engine, args.workers, args.address,
                                              args.smooth, args.plot, args.resume, not args.no_progress)
    except (ModelError, TableError, OSError) as e:
        sys.exit(f"error: {e}")
    print(f"{len(written)} sources written to {args.out}, {len(skipped)} skipped", file=sys.stderr)


if __name__ == "__main__":
    main()
