"""Real-time CPU scheduling for the threads a servo tick waits on (Linux ``SCHED_FIFO``).

Measured on the 2-core development VM while the runtime, its policy process and the simulated world ran
(``python -m harmowam_ctl.bench.loop '{"probe": true}'`` and the same probe under ``chrt -f 50``): a
bare thread sleeping to a 10 ms grid woke p99 3.1 ms late at normal priority and 0.06 ms late under
``SCHED_FIFO``. At normal priority no design of the tick meets a 1 ms jitter budget on a busy machine;
the scheduler decides. So the runtime asks for ``SCHED_FIFO`` for the few threads the tick depends on:
the event loop's thread (it runs the tick), the metronome (it wakes the loop) and the bus's I/O thread.

Always with ``SCHED_RESET_ON_FORK``: threads and processes those threads start (executors, the policy
process, writers) begin at normal priority, so heavy work never inherits the real-time class. The
kernel's real-time throttling (``/proc/sys/kernel/sched_rt_runtime_us``, 95 % by default) keeps a runaway
real-time thread from freezing the machine.

Allowed for root, for a program with ``CAP_SYS_NICE``, or a user with an ``rtprio`` limit (what audio
set-ups use): ``set_realtime`` says which fix applies when it is refused, and the caller goes on at
normal priority.
"""

from __future__ import annotations

import os
import sys

HOW_TO_ALLOW = (
    "allow real-time priority for your user: add the line '@realtime - rtprio 60' to "
    "/etc/security/limits.d/99-realtime.conf, run 'sudo groupadd -f realtime && sudo usermod -aG realtime $USER', "
    "and log in again (or run as root); --no-realtime silences this"
)


def available() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_FIFO")


def set_realtime(priority: int, tid: int = 0) -> str | None:
    """Put thread ``tid`` (0: the calling thread) in ``SCHED_FIFO`` at ``priority`` (1..99), with reset
    on fork. ``None`` when done, else why not (with the fix)."""
    if not 1 <= priority <= 99:
        raise ValueError(f"real-time priority must be 1..99, not {priority}")
    if not available():
        return "real-time scheduling is only used on Linux"
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except PermissionError:
        return f"not permitted: {HOW_TO_ALLOW}"
    except OSError as e:  # e.g. the thread is gone
        return f"{type(e).__name__}: {e}"
    return None


def permitted(priority: int = 50) -> bool:
    """Whether this process may use ``SCHED_FIFO`` at ``priority``: tried on a short-lived thread, so
    nothing here changes."""
    import threading

    out: list[str | None] = []
    t = threading.Thread(target=lambda: out.append(set_realtime(priority)), name="rt-probe", daemon=True)
    t.start()
    t.join(timeout=2.0)
    return bool(out) and out[0] is None


def set_normal(tid: int = 0) -> None:
    """Back to the normal time-sharing class (``SCHED_OTHER``); errors are ignored (the thread may be gone)."""
    if available():
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


def is_realtime(tid: int = 0) -> bool:
    if not available():
        return False
    try:
        return os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0) == os.SCHED_FIFO
    except OSError:
        return False


class kept_scheduling:
    """``with kept_scheduling(): ...``: the calling thread's scheduling class and priority are put back
    afterwards. LeRobot's AV1 video encoding (SVT-AV1) switches the calling thread to SCHED_FIFO priority
    99 when it is allowed to (measured as root: a dataset writer then runs its heavy work at the top
    real-time priority), so every ``save_episode`` runs inside this."""

    def __enter__(self) -> kept_scheduling:
        self._saved = None
        if available():
            try:
                self._saved = (os.sched_getscheduler(0), os.sched_getparam(0))
            except OSError:
                self._saved = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is None:
            return
        policy, param = self._saved
        try:
            if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
                os.sched_setscheduler(0, policy, param)
        except OSError:
            pass
