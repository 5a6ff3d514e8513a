"""--engine local: the units on this machine's cores, one process per core, results in order."""
import multiprocessing

import cv2
import torch

from recognition.batch import FaceClassifier, FaceFinder

IMAGES_PER_TASK = 16  # images a worker looks at before it classifies all of their faces in one batch

_job = _finder = _classifier = None  # this process's own, loaded by load_worker


def load_worker(job):
    """Load this process's detectors and model, unless it has them for this job already."""
    global _job, _finder, _classifier
    if job != _job:
        _job, _finder, _classifier = job, FaceFinder(job), FaceClassifier(job)


def start_worker(job):
    """Pool initializer: one thread per process (processes, not threads, use the cores), then load_worker."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    load_worker(job)


def run_task(units):
    """A task's results: the faces of its units found, then all of them classified at once."""
    return _classifier.classify([_finder.detect(unit) for unit in units])


def tasks(units):
    """Units grouped into tasks, in order: runs of up to IMAGES_PER_TASK images, and each part of a video alone."""
    images = []
    for unit in units:
        if unit.start < 0:
            images.append(unit)
            if len(images) < IMAGES_PER_TASK:
                continue
        if images:
            yield images
            images = []
        if unit.start >= 0:
            yield [unit]
    if images:
        yield images


def local_results(job, units, workers):
    """Each unit's result, in the units' order, from up to `workers` processes (this one for 1, or 1 task)."""
    work = list(tasks(units))
    if min(workers, len(work)) <= 1:
        load_worker(job)
        for task in work:
            yield from run_task(task)
        return
    # spawn: a forked copy of a process that has started torch's or OpenCV's threads can hang.
    with multiprocessing.get_context("spawn").Pool(min(workers, len(work)), start_worker, (job,)) as pool:
        for results in pool.imap(run_task, work):
            yield from results
