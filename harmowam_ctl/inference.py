"""``PolicyRunner``: a policy's two stages (predict, act) run off the event loop.

Each stage has its own worker, so a slow world model never delays the act stage and neither ever
delays the loop (the servo tick):

* ``mode="thread"``: two daemon threads in this process (``predict`` builds the policy and runs
  ``predict``; ``act`` runs ``act`` and ``reset``). A result comes back to the loop with
  ``call_soon_threadsafe``. Torch releases the GIL inside its kernels; the Python between kernels
  still takes it from the loop. Needed for ``scripted`` (its ``TaskEnv`` context cannot be pickled).
  A hung policy cannot be killed in this mode: its thread stays busy until the policy returns.
* ``mode="process"``: one child process (``spawn``: the parent has threads, no plain fork) with one
  thread per stage inside, over two pipes (``harmowam_ctl.inference_process``). The loop reads the
  pipe through asyncio's non-blocking pipe transports; nothing on the loop waits for the child.
  ``WorldPrediction.latent`` stays in the child: the parent gets ``key`` (the last ``history``
  latents are kept there), and ``act(pred, obs)`` sends the key back.

Calls: ``predict``/``act`` return the policy's result with ``t_done = time.monotonic()`` stamped when
the awaiting call returns. Calls to one stage run in order, one at a time. A policy that raises: the
call raises ``PolicyError`` (the runner goes on). A call cancelled by the caller (``asyncio.timeout``)
is skipped if it has not started; if it is running, the stage stays busy until the policy returns and
later calls wait for it. A child that dies: pending and later calls raise ``PolicyError("policy process
exited with code N; ...")``. ``close()`` never hangs: process mode asks the child, then terminates,
then kills it.

CPU priority: the workers run ``nice`` (default 10) steps below the loop's thread (thread mode: per
thread, Linux; process mode: the whole child), so on a machine with few cores the tick wins the CPU
when both want it. Measured (``harmowam_ctl.bench.inference``, 2-core VM, synthetic policy 15 ms +
8 ms driven back to back, 100 Hz tick): ticks > 5 ms late in 10 s: thread 16 -> 2, process 29 -> 5 with
nice 0 -> 10, tick p99 thread 5.8 -> 4.1 ms, process 6.2 -> 4.8 ms, with the same policy throughput
(~45 predict/s). Thread mode disturbs the tick slightly less than process mode there; process mode is
the one that can kill a hung policy and survives a crash in native code. The bench's doc has the table.

Overhead per call (an observation with two 96 x 96 images; runner round trip minus the same call made
directly): thread mode +0.1 ms predict, act within noise, reset round trip 0.03 ms; process mode
+0.6 ms predict (pickling 55 kB of images, two pipe hops, two thread hand-offs), +0.2 ms act, reset
round trip 0.06 ms.

Process mode uses ``spawn``: the program's main module is imported again in the child, so a script that
starts a process-mode runner needs the ``if __name__ == "__main__":`` guard (the ``harmowam`` command
has it). The child takes ~1-2 s to start (importing torch).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import structlog

from policies.interface import ActionChunk, Observation, Policy, WorldPrediction
from policies.registry import NEEDS_CONTEXT, PolicySpec, build

if TYPE_CHECKING:
    from harmowam_ctl.inference_process import ProcessBackend

log = structlog.get_logger(__name__)

Mode = Literal["thread", "process"]
MODES: tuple[str, ...] = ("thread", "process")
DEFAULT_HISTORY = 4
DEFAULT_NICE = 10  # the workers' niceness increment, chosen from harmowam_ctl.bench.inference (module doc)


class PolicyError(RuntimeError):
    """A policy could not be built, raised, or its process died; the message says what to do.
    ``remote_traceback``: the policy's traceback text when it raised in a policy process."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


CHECK_OPTIONS = "check --policy and its options (the cause names what to change)"


def build_error(name: str, mode: str, cause: str, hint: str = CHECK_OPTIONS) -> PolicyError:
    return PolicyError(f"could not build policy {name!r} ({mode} mode): {cause}; {hint}")


def call_error(name: str, op: str, cause: str, tb: str = "") -> PolicyError:
    return PolicyError(f"policy {name!r} failed in {op}: {cause} (the runner goes on; the next call may work)", tb)


def run_op(policy: Policy, op: str, args: tuple[Any, ...]) -> Any:
    """One stage call on the policy, with its result type checked (both modes use it)."""
    if op == "predict":
        out = policy.predict(*args)
        want: type = WorldPrediction
    elif op == "act":
        out = policy.act(*args)
        want = ActionChunk
    elif op == "reset":
        policy.reset()
        return None
    else:
        raise ValueError(f"unknown stage call {op!r}")
    if not isinstance(out, want):
        raise TypeError(f"{op} returned {type(out).__name__}, not a {want.__name__}")
    return out


def lower_priority(nice: int, tid: int = 0) -> None:
    """Raise the niceness of thread ``tid`` (0: the calling thread) by ``nice``: Linux keeps a
    niceness per thread, and new threads inherit their creator's. A failure is logged, not raised."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as e:
        log.warning("could not lower the policy worker's CPU priority", error=str(e))


def settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """Complete ``fut`` on its loop unless the caller has given up on it."""
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


class _Job:
    __slots__ = ("args", "cancelled", "fn", "fut", "loop")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], fut: asyncio.Future[Any]) -> None:
        self.fn, self.args, self.fut = fn, args, fut
        self.loop = fut.get_loop()
        self.cancelled = False

    def on_done(self, fut: asyncio.Future[Any]) -> None:
        self.cancelled = fut.cancelled()  # a job not started yet is skipped


class StageWorker:
    """One daemon thread running one stage's jobs in order; results go back with
    ``call_soon_threadsafe`` (module doc)."""

    def __init__(self, name: str, nice: int = 0) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.nice = nice
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        fut = asyncio.get_running_loop().create_future()
        job = _Job(fn, args, fut)
        fut.add_done_callback(job.on_done)
        self._jobs.put(job)
        return fut

    def stop(self) -> None:
        self._jobs.put(None)  # after the jobs already queued; a busy thread finishes its job first

    def _run(self) -> None:
        if sys.platform.startswith("linux"):  # elsewhere the niceness is per process, not per thread
            lower_priority(self.nice, threading.get_native_id())
        while (job := self._jobs.get()) is not None:
            if job.cancelled:
                continue
            result, exc = None, None
            try:
                result = job.fn(*job.args)
            except BaseException as e:  # noqa: BLE001 - goes to the awaiting caller
                exc = e
            try:
                job.loop.call_soon_threadsafe(settle, job.fut, result, exc)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for this result


class ThreadBackend:
    """The policy in two worker threads of this process."""

    def __init__(self, spec: PolicySpec, context: Any, start_timeout_s: float, nice: int) -> None:
        self.spec, self.context, self.start_timeout_s = spec, context, start_timeout_s
        self.policy: Policy | None = None
        self._predict = StageWorker(f"policy-{spec.name}-predict", nice)
        self._act = StageWorker(f"policy-{spec.name}-act", nice)
        self._pending: set[asyncio.Future[Any]] = set()

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def alive(self) -> bool:
        return self.policy is not None and self._predict.thread.is_alive() and self._act.thread.is_alive()

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self.start_timeout_s):
                self.policy = await self._track(self._predict.submit(build, self.spec, self.context))
        except TimeoutError as e:
            raise build_error(self.spec.name, "thread", f"not built within {self.start_timeout_s} s") from e
        except Exception as e:
            raise build_error(self.spec.name, "thread", describe(e)) from e

    def submit(self, op: str, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        worker = self._predict if op == "predict" else self._act
        return self._track(worker.submit(self._call, op, args))

    def _call(self, op: str, args: tuple[Any, ...]) -> Any:
        assert self.policy is not None
        try:
            return run_op(self.policy, op, args)
        except Exception as e:
            raise call_error(self.spec.name, op, describe(e), traceback.format_exc()) from e

    def _track(self, fut: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        return fut

    async def close(self) -> None:
        self._predict.stop()
        self._act.stop()
        for fut in list(self._pending):  # a busy thread finishes its call and exits; nobody waits for it
            settle(fut, None, PolicyError("the policy runner was closed while this call waited"))


class PolicyRunner:
    """A policy's predict and act stages, off the event loop (module doc).

    ``spec``: which policy (``policies.registry``). ``mode``: ``"thread"`` or ``"process"``.
    ``context``: what the policy needs from this program (the sim ``TaskEnv`` for ``scripted``; thread
    mode only). ``history``: latents a policy process keeps for ``act``. ``start_timeout_s``: how long
    the policy process may take to import and build. ``close_timeout_s``: how long ``close`` waits at
    each step (ask, terminate, kill). ``nice``: how much lower the workers' CPU priority is (0..19,
    module doc); the event loop's thread keeps its own.
    """

    def __init__(
        self,
        spec: PolicySpec,
        mode: Mode = "thread",
        context: Any = None,
        *,
        history: int = DEFAULT_HISTORY,
        start_timeout_s: float = 120.0,
        close_timeout_s: float = 2.0,
        nice: int = DEFAULT_NICE,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"policy mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "process" and (context is not None or spec.name in NEEDS_CONTEXT):
            raise PolicyError(
                f"policy {spec.name!r} runs in thread mode only: it uses the simulation of this process, "
                "which cannot be sent to a policy process. Use thread mode (--policy-mode thread)."
            )
        if history < 1:
            raise ValueError(f"history must be >= 1 prediction, not {history}")
        self.spec = spec
        self._mode: Mode = mode
        self._backend: ThreadBackend | ProcessBackend | None = None
        self._context = context
        self._history = history
        self._start_timeout_s = start_timeout_s
        self._close_timeout_s = close_timeout_s
        if not 0 <= nice <= 19:
            raise ValueError(f"nice must be 0..19 (how much lower the workers' CPU priority is), not {nice}")
        self._nice = nice
        self._started = False
        self._closed = False

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def alive(self) -> bool:
        """Started, not closed, and (process mode) the policy process is running."""
        return self._started and not self._closed and self._backend is not None and self._backend.alive

    @property
    def pid(self) -> int | None:
        """The process the policy runs in (this one in thread mode); ``None`` before ``start``."""
        return None if self._backend is None else self._backend.pid

    async def start(self) -> None:
        """Build the policy in its worker; ``PolicyError`` (with the cause) when it cannot be built."""
        if self._started or self._closed:
            raise PolicyError("this policy runner was already started; make a new PolicyRunner")
        t = time.monotonic()
        if self._mode == "thread":
            self._backend = ThreadBackend(self.spec, self._context, self._start_timeout_s, self._nice)
        else:
            from harmowam_ctl.inference_process import ProcessBackend

            self._backend = ProcessBackend(
                self.spec, self._history, self._start_timeout_s, self._close_timeout_s, self._nice
            )
        try:
            await self._backend.start()
        except BaseException:
            self._closed = True
            await self._backend.close()
            raise
        self._started = True
        log.info("policy started", policy=self.spec.name, mode=self._mode, pid=self.pid, start_s=round(time.monotonic() - t, 3))

    async def predict(self, obs: Observation) -> WorldPrediction:
        pred = await self._call("predict", (obs,))
        return dataclasses.replace(pred, t_done=time.monotonic())

    async def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk:
        chunk = await self._call("act", (prediction, obs))
        return dataclasses.replace(chunk, t_done=time.monotonic())

    async def reset(self) -> None:
        """The policy forgets its episode (runs on the act stage, after the act calls queued before)."""
        await self._call("reset", ())

    async def _call(self, op: str, args: tuple[Any, ...]) -> Any:
        if self._closed:
            raise PolicyError("the policy runner is closed; start a new one")
        if not self._started or self._backend is None:
            raise PolicyError("the policy runner is not started: await runner.start() first")
        return await self._backend.submit(op, args)

    async def close(self) -> None:
        """Stop the workers (process mode: ask the child, then terminate, then kill it). Idempotent;
        calls still waiting raise ``PolicyError``."""
        if self._closed:
            return
        self._closed = True
        if self._backend is not None:
            await self._backend.close()
        log.info("policy closed", policy=self.spec.name, mode=self._mode)

    async def __aenter__(self) -> PolicyRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
