"""Convert the BlazeFace .tflite files in recognition/blazeface/ to the ONNX files the app runs.

    pip install tflite2onnx==0.4.1       # the converter, needed only here (it brings onnx and tflite)
    python -m scripts.convert_blazeface  # writes recognition/blazeface/*.onnx, prints their SHA-256
    python -m scripts.convert_blazeface --time   # both runtimes side by side, one thread (no converter needed)

tflite2onnx turns TFLite's NHWC graph into an NCHW ONNX graph with the same weights (stored as
float32; TFLite keeps the full-range model's in float16). onnxruntime runs the result about twice
as fast as OpenCV's dnn module runs the .tflite on one thread (docs/experiments.md).
tests/test_faces.py checks that both runtimes give the same outputs.
"""
import argparse
import hashlib
import time
from pathlib import Path

import cv2
import numpy as np

from recognition.faces import BLAZEFACE_DIR, FULL_RANGE, SHORT_RANGE, BlazeNet


def time_runtimes(rounds=5, calls=50):
    """p50 ms of one forward pass, OpenCV's dnn on the .tflite against onnxruntime on the .onnx, interleaved."""
    cv2.setNumThreads(1)
    for model in (FULL_RANGE, SHORT_RANGE):
        tflite = cv2.dnn.readNetFromTFLite(str(BLAZEFACE_DIR / model.tflite))
        outputs = tflite.getUnconnectedOutLayersNames()
        onnx = BlazeNet(model)
        blob = np.random.default_rng(0).uniform(-1, 1, (1, 3, model.input_size, model.input_size)).astype(np.float32)
        runs = {"cv2.dnn, .tflite": lambda: (tflite.setInput(blob), tflite.forward(outputs)),
                "onnxruntime, .onnx": lambda: onnx.forward(blob)}
        times = {name: [] for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                for _ in range(calls):
                    start = time.perf_counter()
                    run()
                    times[name].append((time.perf_counter() - start) * 1e3)
        p50 = {name: float(np.median(t)) for name, t in times.items()}
        cv, ort = p50.values()
        print(f"{model.name}: cv2.dnn {cv:.2f} ms, onnxruntime {ort:.2f} ms ({cv / ort:.2f}x faster), "
              f"p50 of {rounds} x {calls} interleaved calls on one thread")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=BLAZEFACE_DIR,
                        help="folder to convert in: its .tflite files to .onnx (default: the app's)")
    parser.add_argument("--time", action="store_true",
                        help="time both runtimes on the app's files instead of converting (default: off)")
    args = parser.parse_args()
    if args.time:
        return time_runtimes()
    import tflite2onnx  # noqa: PLC0415 (a converter, not a dependency of the project)

    for model in (FULL_RANGE, SHORT_RANGE):
        source, target = args.dir / model.tflite, args.dir / model.onnx
        tflite2onnx.convert(str(source), str(target))
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        print(f"{source.name} -> {target.name}: {target.stat().st_size:,} bytes, SHA-256 {digest}")


if __name__ == "__main__":
    main()
