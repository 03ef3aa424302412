"""Independent jobs (benchmark cells, tuning trials) on this process, this machine's cores, or a Ray cluster.

``workers=1`` runs them one after another here and never imports Ray. More workers start an embedded Ray on
this machine (on 127.0.0.1, ``workers`` CPUs); ``address`` submits the same jobs to a running Ray cluster. A job
that raises or loses its worker is retried once, then reported as failed while the others go on; a line is
printed as each job finishes, with an estimate of the time left.
"""

from __future__ import annotations

import os
import re
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sb3_il.errors import UserError, first_line

#: A host name or IPv4 address (Ray's GCS address is HOST:PORT).
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
#: Tries per job: the first, and one retry.
TRIES = 2


@dataclass
class Job:
    key: str
    fn: Callable[..., Any]
    args: tuple


@dataclass
class Failed:
    """A job that failed every try; ``error`` is its last exception, in one line."""

    error: str


def check_workers(workers: int, address: str | None) -> None:
    """``--workers`` and ``--ray-address`` checked before any work: a bad address would otherwise make Ray
    retry until killed (a closed port) or raise a traceback (a malformed one)."""
    if workers < 1:
        raise UserError(f"--workers must be 1 or more, got {workers}")
    if address is None:
        return
    host, _, port = address.rpartition(":")
    if not (_HOST.match(host) and port.isdigit() and 0 < int(port) < 65536):
        raise UserError(f"--ray-address {address!r} must be HOST:PORT, e.g. 127.0.0.1:6379 (see `ray start --head`)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise UserError(f"no Ray cluster answers at {address} ({first_line(err)}); start one with "
                        "`ray start --head` or drop --ray-address") from None  # fmt: skip


def run_jobs(jobs: Sequence[Job], workers: int = 1, address: str | None = None) -> dict[str, Any]:
    """Each job's result (or :class:`Failed`), by key."""
    check_workers(workers, address)
    progress = Progress(len(jobs))
    if workers == 1 and address is None:
        return {job.key: progress.done(job.key, _with_retry(job)) for job in jobs}
    with ray_session(workers, address) as ray:
        remote = ray.remote(num_cpus=1, max_retries=TRIES - 1, retry_exceptions=True)(_call)
        pending = {remote.remote(job.fn, job.args): job.key for job in jobs}
        results: dict[str, Any] = {}
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(ready)
            try:
                results[key] = progress.done(key, ray.get(ready))
            except Exception as err:  # the task's own error (after its retry) or a lost worker
                results[key] = progress.done(key, Failed(_one_line(err)))
        return results


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    """A job in a Ray worker: one core, so parallel jobs do not fight over threads."""
    from sb3_il.policy import use_one_thread

    use_one_thread()
    return fn(*args)


def _with_retry(job: Job) -> Any:
    for attempt in range(TRIES):
        try:
            return job.fn(*job.args)
        except Exception as err:  # one broken job must not sink the others
            traceback.print_exc()
            if attempt == TRIES - 1:
                return Failed(_one_line(err))
    raise AssertionError("unreachable")


def _one_line(err: BaseException) -> str:
    cause = getattr(err, "cause", None) or err  # Ray wraps a task's exception
    return f"{type(cause).__name__}: {cause}".strip().splitlines()[0]


class Progress:
    """A line per finished job: how many are done, its outcome, and the time left at the rate so far."""

    def __init__(self, total: int) -> None:
        self.total, self.finished, self.start = total, 0, time.perf_counter()

    def done(self, key: str, result: Any) -> Any:
        self.finished += 1
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.finished * (self.total - self.finished)
        outcome = f"failed ({result.error})" if isinstance(result, Failed) else "done"
        print(
            f"[{self.finished}/{self.total}] {key}: {outcome}; {elapsed:.0f} s so far, ~{left:.0f} s left", flush=True
        )
        return result


@contextmanager
def ray_session(workers: int, address: str | None) -> Iterator[Any]:
    """Ray, embedded on 127.0.0.1 with ``workers`` CPUs, or connected to the cluster at ``address``."""
    local = address is None or address.split(":")[0] in ("127.0.0.1", "localhost")
    if local:  # before Ray is imported: every Ray process on this machine binds to loopback only
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise UserError("--workers > 1 and --ray-address need Ray; pip install 'sb3-il[ray]'") from None
    if address is None:
        ray.init(address="local", num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False)  # fmt: skip
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
