"""--engine ray: the same tasks on Ray Data, on this machine or a cluster.

The tasks (those of the local engine: up to 16 images, or one part of a video) become a dataset
with a block each, and one `map_batches` stage of actors analyses them: each actor loads the
detector and the model once and, per task, finds the faces and classifies them in one batch, as a
local worker does (one stage rather than two: docs/experiments.md, "Analysis: Ray stages and
blocks"). Every node reads the inputs and the model by their paths, so on a cluster they must be on
storage that all nodes mount at the same path.
"""
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import ray

import modelfile
from recognition.batch import Analyser, Unit, tasks


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


class AnalyseTasks:
    """The stage: tasks (JSON lists of units) -> their units' results, a row each."""

    def __init__(self, job):
        self.analyser = Analyser(job)

    def __call__(self, batch):
        return to_columns([result for task in batch["task"]
                           for result in self.analyser.run([Unit(**unit) for unit in json.loads(task)])])


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
    work = [json.dumps([asdict(unit) for unit in task]) for task in tasks(units)]
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    dataset = ray.data.from_items([{"task": task} for task in work], override_num_blocks=len(work))
    dataset = dataset.map_batches(AnalyseTasks, fn_constructor_args=(job,), batch_size=1, num_cpus=1,
                                  compute=ray.data.ActorPoolStrategy(size=min(cpus, len(work))))
    return (row for batch in dataset.iter_batches(batch_format="numpy", batch_size=None) for row in to_rows(batch))
