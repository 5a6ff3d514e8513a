"""Convert the BlazeFace .tflite files in recognition/blazeface/ to the ONNX files the app runs.

    pip install tflite2onnx==0.4.1       # the converter, needed only here (it brings onnx and tflite)
    python -m scripts.convert_blazeface  # writes recognition/blazeface/*.onnx, prints their SHA-256

tflite2onnx turns TFLite's NHWC graph into an NCHW ONNX graph with the same weights (stored as
float32; TFLite keeps the full-range model's in float16). onnxruntime runs the result about twice
as fast as OpenCV's dnn module runs the .tflite on one thread (docs/experiments.md).
tests/test_faces.py checks that both runtimes give the same outputs.
"""
import argparse
import hashlib
from pathlib import Path

from recognition.faces import BLAZEFACE_DIR, FULL_RANGE, SHORT_RANGE


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=BLAZEFACE_DIR, help="folder of the .tflite and .onnx files")
    args = parser.parse_args()
    import tflite2onnx  # noqa: PLC0415 (a converter, not a dependency of the project)

    for model in (FULL_RANGE, SHORT_RANGE):
        source, target = args.dir / model.tflite, args.dir / model.file
        tflite2onnx.convert(str(source), str(target))
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        print(f"{source.name} -> {target.name}: {target.stat().st_size:,} bytes, SHA-256 {digest}")


if __name__ == "__main__":
    main()
