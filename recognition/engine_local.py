"""--engine local: the tasks on this machine's cores, one process per core, results in order."""
import multiprocessing

from recognition.batch import Analyser, tasks

_job = _analyser = None  # this process's own, loaded by load_worker


def load_worker(job):
    """Load this process's detectors and model, unless it has them for this job already."""
    global _job, _analyser
    if job != _job:
        _job, _analyser = job, Analyser(job)


def run_task(task):
    """A task's results (see Analyser.run), in this process."""
    return _analyser.run(task)


def local_results(job, units, workers):
    """Each unit's result, in the units' order, from up to `workers` processes (this one for 1, or 1 task)."""
    work = list(tasks(units))
    if min(workers, len(work)) <= 1:
        load_worker(job)
        for task in work:
            yield from run_task(task)
        return
    # spawn: a forked copy of a process that has started torch's or OpenCV's threads can hang.
    with multiprocessing.get_context("spawn").Pool(min(workers, len(work)), load_worker, (job,)) as pool:
        for results in pool.imap(run_task, work):
            yield from results
