"""--engine ray: the same units on Ray Data, on this machine or a cluster.

The units become a dataset; finding faces and classifying them are two `map_batches` stages
of actors that load their detector or model once. Every node reads the inputs and the model
by their paths, so on a cluster they must be on storage that all nodes mount at the same path.
"""
import math
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import ray
import torch

import modelfile
from recognition.batch import FaceClassifier, FaceFinder, Unit

UNITS_PER_DETECT = 4     # units per detector call: small, so that the actors share the work evenly
UNITS_PER_CLASSIFY = 64  # units whose faces are classified in one batch
# A classifier needs about a sixteenth of the CPU time of the detectors that feed it (0.5 ms a
# face against 8 ms an image): it asks for no CPU of its own and shares the detectors' cores.
DETECTORS_PER_CLASSIFIER = 16


def one_thread():
    """Actors, not threads, use the cores."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def to_columns(results):
    """A list of result dicts -> a Ray batch: a column per key, arrays of different lengths kept whole."""
    columns = {}
    for key in results[0]:
        column = np.empty(len(results), object)
        for i, result in enumerate(results):
            column[i] = result[key]
        columns[key] = column
    return columns


def to_rows(batch):
    """A Ray batch (a column per key) -> a list of dicts."""
    return [{key: batch[key][i] for key in batch} for i in range(len(next(iter(batch.values()))))]


class DetectFaces:
    """Stage 1: a batch of units -> their faces (boxes, frames, crops)."""

    def __init__(self, job):
        one_thread()
        self.finder = FaceFinder(job)

    def __call__(self, batch):
        units = [Unit(**{k: v.item() if hasattr(v, "item") else v for k, v in row.items()}) for row in to_rows(batch)]
        return to_columns([self.finder.detect(unit) for unit in units])


class ClassifyFaces:
    """Stage 2: the faces of a batch of units -> their probabilities, in one forward pass."""

    def __init__(self, job):
        one_thread()
        self.classifier = FaceClassifier(job)

    def __call__(self, batch):
        return to_columns(self.classifier.classify(to_rows(batch)))


def connect(address=None):
    """Join the Ray cluster at `address`, or start one on this machine; nothing if already connected."""
    if not ray.is_initialized():
        # A cluster's workers get this package and the model file's contract, which it imports.
        packages = [str(Path(__file__).resolve().parent), str(Path(modelfile.__file__).resolve().parent)]
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                 runtime_env={"py_modules": packages} if address else None)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows in the order of the local engine
    context.enable_progress_bars = False              # the command draws its own,
    context.print_on_execution_start = False          # and reports what it could not read


def ray_results(job, units, address=None):
    """Each unit's result, in the units' order, computed by Ray Data (connected now, computed as they are read)."""
    connect(address)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    detectors = min(cpus, math.ceil(len(units) / UNITS_PER_DETECT))  # no actor that would have nothing to do
    # A block per unit, so that the units of one video spread over the actors.
    dataset = ray.data.from_items([asdict(unit) for unit in units], override_num_blocks=len(units))
    dataset = dataset.map_batches(
        DetectFaces, fn_constructor_args=(job,), batch_size=UNITS_PER_DETECT, num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=detectors))
    dataset = dataset.map_batches(
        ClassifyFaces, fn_constructor_args=(job,), batch_size=UNITS_PER_CLASSIFY, num_cpus=0,
        compute=ray.data.ActorPoolStrategy(size=max(1, detectors // DETECTORS_PER_CLASSIFIER)))
    return (row for batch in dataset.iter_batches(batch_format="numpy", batch_size=None) for row in to_rows(batch))
