"""`launcher=joblib`: Hydra's joblib launcher, made to survive the loss of a worker.

Hydra's joblib launcher runs every job on one loky process pool. When one worker dies (SIGKILL,
the out-of-memory killer), loky declares the whole pool broken and SIGKILLs the other workers:
their jobs die with their runs left RUNNING, the jobs not yet started never run, and the sweep
aborts before its summary. Here each of the `n_jobs` workers is a pool of its own (a one-process
loky executor), so a worker's death costs only the job it was running: that job reports NaN to
the sweeper, its run is ended FAILED with the reason when the sweep is summarised (an orphan,
`tracking.store.close_orphans`), a fresh worker takes its place, and the other jobs run on.

Signals: workers run in their own session, so a terminal's Ctrl-C reaches the launching process
only, which forwards SIGINT or SIGTERM to every busy worker: each job stops at its next batch
boundary and ends KILLED with a checkpoint; no new job starts; the sweep then stops with
`TrainingInterrupted` (its parent run ended KILLED and summarised by the sweep callback). A
second signal is forwarded too (jobs stop at once) and stops the sweep without waiting.

Workers are reused from job to job (and between an Optuna sweep's batches), as joblib's are, so
TensorFlow is imported once per worker. joblib's other options (`backend`, `prefer`, ...) do not
apply: jobs are processes, as Hydra requires.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra_plugins.hydra_joblib_launcher._core import execute_job
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from joblib.externals.loky import ProcessPoolExecutor
from joblib.externals.loky.process_executor import BrokenProcessPool

from forecaster.cli import signals
from forecaster.errors import TrainingInterrupted

log = logging.getLogger(__name__)


class Worker:
    """One worker process, in a one-process executor of its own, in a session of its own."""

    def __init__(self) -> None:
        self.executor = ProcessPoolExecutor(max_workers=1, initializer=os.setsid)
        self.pid: int = self.executor.submit(os.getpid).result()
        self.job: int | None = None  # the job it runs now

    def signal(self, number: int) -> None:
        try:
            os.kill(self.pid, number)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.executor.shutdown(wait=True, kill_workers=True)


class IsolatingJoblibLauncher(JoblibLauncher):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.workers: list[Worker] = []
        atexit.register(self._close)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        n_workers = self._n_workers(len(job_overrides))
        log.info(
            "Launching %d jobs on %d worker processes (one executor each), sweep output dir: %s",
            len(job_overrides),
            n_workers,
            sweep_dir,
        )
        for idx, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + idx, " ".join(filter_overrides(overrides)))
        while len(self.workers) < n_workers:
            self.workers.append(Worker())

        singleton_state = Singleton.get_state()
        queue = deque((initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides))
        results: dict[int, JobReturn] = {}
        running: dict[Future, tuple[Worker, int, list[str]]] = {}
        stopped: list[TrainingInterrupted] = []
        with self._forward_signals() as received:
            while queue or running:
                for worker in self.workers[:n_workers]:
                    if queue and not received and worker.job is None:
                        idx, overrides = queue.popleft()
                        worker.job = idx
                        future = worker.executor.submit(
                            execute_job,
                            idx,
                            overrides,
                            self.hydra_context,
                            self.config,
                            self.task_function,
                            singleton_state,
                        )
                        running[future] = (worker, idx, overrides)
                if not running:
                    break  # stopping: the jobs not started stay so
                done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    worker, idx, overrides = running.pop(future)
                    worker.job = None
                    results[idx] = self._result(future, worker, idx, overrides, stopped)
        if received:
            message = (
                f"{received[0]} received: the sweep stopped; of {len(job_overrides)} jobs, "
                f"{len(results) - len(stopped)} ended, {len(stopped)} were stopped and "
                f"{len(queue)} never started"
            )
            log.error("%s", message)
            raise TrainingInterrupted(message, signal.Signals[received[0]])
        return [results[idx] for idx in sorted(results)]

    def _result(
        self,
        future: Future,
        worker: Worker,
        idx: int,
        overrides: list[str],
        stopped: list[TrainingInterrupted],
    ) -> JobReturn:
        try:
            return future.result()
        except BrokenProcessPool as error:
            log.error(
                "job #%d (%s): its worker process (pid %d) died: %s. Its run is ended FAILED "
                "when the sweep is summarised; the other jobs go on.",
                idx,
                " ".join(filter_overrides(overrides)),
                worker.pid,
                _exit_codes(error),
            )
            self.workers[self.workers.index(worker)] = Worker()
            worker.executor.shutdown(wait=False, kill_workers=True)
        except TrainingInterrupted as error:  # the job stopped on a forwarded signal
            stopped.append(error)
        # Like a failed job's (cli.train.main): NaN, which sweepers record as a failed trial.
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=math.nan)

    def _n_workers(self, n_jobs_to_run: int) -> int:
        n_jobs = int(self.joblib.get("n_jobs") or 1)
        if n_jobs < 0:  # joblib's convention: -1 is every core, -2 all but one, ...
            n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
        return max(1, min(n_jobs, n_jobs_to_run))

    @contextmanager
    def _forward_signals(self) -> Iterator[list[str]]:
        """SIGINT / SIGTERM here go on to every busy worker; the names received are listed."""
        received: list[str] = []
        if threading.current_thread() is not threading.main_thread():
            yield received
            return

        def forward(number: int, frame) -> None:
            name = signal.Signals(number).name
            received.append(name)
            signals.received.append(name)
            busy = [w for w in self.workers if w.job is not None]
            for worker in busy:
                worker.signal(number)
            if len(received) > 1:
                raise TrainingInterrupted(
                    f"{name} received again: the sweep stopped at once", number
                )
            log.warning(
                "%s received: forwarded to the %d running jobs, which stop after their current "
                "batch; no new job starts (send it again to stop at once)",
                name,
                len(busy),
            )

        previous = {number: signal.signal(number, forward) for number in signals.SIGNALS}
        try:
            yield received
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.workers = []


def _exit_codes(error: BaseException) -> str:
    """What loky knows of how the worker ended, e.g. "exit codes of the workers are
    {SIGKILL(-9)}" (a signal: the out-of-memory killer, or someone's kill -9)."""
    for line in str(error).splitlines():
        if "exit codes" in line:
            return line.strip().removeprefix("The ")
    return type(error).__name__
