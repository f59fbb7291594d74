"""Dynamic batching: the lines of concurrent requests searched together by one worker thread."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Options = TypeVar("Options", bound=Hashable)
Result = TypeVar("Result")


@dataclass
class Job(Generic[Options, Result]):
    """One request's lines, its search options, and where its results go."""

    lines: list[str]
    options: Options
    future: Future[list[Result]] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


_CLOSE = object()  # the last item of a closed queue


class DynamicBatcher(Generic[Options, Result]):
    """Lines of concurrent requests, searched together by one worker thread that owns the model.

    Requests wait in a queue. The worker takes the oldest, then whatever else arrives until
    max_wait seconds after that request was queued or until max_lines lines are taken, and
    hands the lines of all requests with the same options to `process` as one list (which for
    a Translator means one length-sorted search). While the worker searches, new requests
    queue up and are all taken at once next time: the busier the server, the fuller the
    batches, and an idle server adds at most max_wait to a request's time.

    process: (lines, options) -> one result per line, in order. Only the worker calls it, so
    the model needs no lock.
    """

    def __init__(
        self, process: Callable[[list[str], Options], list[Result]], max_lines: int, max_wait: float
    ):
        self.process, self.max_lines, self.max_wait = process, max_lines, max_wait
        self._queue: queue.Queue[Job[Options, Result] | object] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()  # no request may slip in behind the closing mark
        self.batches = 0  # calls of process, and the lines they took: the mean batch size
        self.lines = 0
        self.pending = 0  # requests queued or being processed
        self._worker = threading.Thread(target=self._work, name="seqcli-batcher", daemon=True)
        self._worker.start()

    def submit(self, lines: list[str], options: Options) -> Future[list[Result]]:
        """Queue one request; the future gets one result per line, or process's exception."""
        job: Job[Options, Result] = Job(lines, options)
        with self._lock:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self.pending += 1
            self._queue.put(job)
        job.future.add_done_callback(self._done)
        return job.future

    def _done(self, future: Future[list[Result]]) -> None:
        with self._lock:
            self.pending -= 1

    def close(self) -> None:
        """Finish every queued request, then stop the worker."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_CLOSE)
        self._worker.join()

    def _work(self) -> None:
        while (first := self._queue.get()) is not _CLOSE:
            assert isinstance(first, Job)
            jobs = [first, *self._gather(first)]
            by_options: dict[Options, list[Job[Options, Result]]] = {}
            for job in jobs:
                by_options.setdefault(job.options, []).append(job)
            for options, group in by_options.items():
                self._run(options, group)

    def _gather(self, first: Job[Options, Result]) -> list[Job[Options, Result]]:
        """The requests that join first's batch: queued ones, and new ones until the deadline."""
        jobs: list[Job[Options, Result]] = []
        taken = len(first.lines)
        deadline = first.queued_at + self.max_wait
        while taken < self.max_lines:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is _CLOSE:
                self._queue.put(_CLOSE)  # end the loop after this batch
                break
            assert isinstance(job, Job)
            jobs.append(job)
            taken += len(job.lines)
        return jobs

    def _run(self, options: Options, jobs: list[Job[Options, Result]]) -> None:
        """Process the lines of jobs as one list and hand each job its slice of the results."""
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]  # not cancelled
        if jobs:
            self._process(options, jobs)

    def _process(self, options: Options, jobs: list[Job[Options, Result]]) -> None:
        lines = [line for job in jobs for line in job.lines]
        try:
            results = self.process(lines, options)
        except Exception as error:
            if len(jobs) > 1:  # one request's failure must not fail the others: each alone
                for job in jobs:
                    self._process(options, [job])
            else:
                jobs[0].future.set_exception(error)
            return
        self.batches += 1
        self.lines += len(lines)
        start = 0
        for job in jobs:
            job.future.set_result(results[start : start + len(job.lines)])
            start += len(job.lines)
