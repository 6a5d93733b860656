"""The runtime's lifecycle: one state, an explicit table of the moves allowed out of it, and a record of
every move with its cause.

::

    DISCONNECTED -> CONNECTED -> ACTIVE -> SAFE_STOPPING -> SAFE_STOPPED -> DISCONNECTED
                        |  \\______________________________^
                        v
                   DISCONNECTED             any state -> FAULT -> DISCONNECTED

Decisions (see ``ALLOWED``):

- ``ACTIVE`` (torque on) is left only through ``SAFE_STOPPING`` or ``FAULT``: there is no direct
  ``ACTIVE -> CONNECTED`` (torque off where the arm happens to be drops it; field notes #12).
- ``CONNECTED -> SAFE_STOPPED`` is allowed: a stop (Ctrl+C, a watchdog) before torque was ever on has
  nothing to move; the run is over and says so the same way as after a real safe stop.
  ``CONNECTED -> DISCONNECTED`` is for commands that connect and never activate.
- ``SAFE_STOPPED`` and ``FAULT`` are ends of a run: the only way on is ``DISCONNECTED`` (a new run
  connects again). ``SAFE_STOPPING -> FAULT`` is how a safe stop that could not finish ends.
- Every state but ``FAULT`` may go to ``FAULT`` (a failed connect included).
- ``to(state, cause)`` to the current state is a no-op returning ``None`` (a second safe-stop request
  while stopping, a second fault while in fault), logged at debug level only.

The lifecycle is driven from the event loop (``to`` is synchronous and not thread-safe). Listeners are
called synchronously after the state changed; one that raises is logged and does not stop the others
(a failing status line must not break a safe stop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

import structlog

from harmowam_ctl.clock import Clock

__all__ = ["ALLOWED", "Lifecycle", "LifecycleError", "State", "Transition"]


class State(str, Enum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    ACTIVE = "active"
    SAFE_STOPPING = "safe_stopping"
    SAFE_STOPPED = "safe_stopped"
    FAULT = "fault"

    @property
    def description(self) -> str:
        """One line for a status display."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    State.DISCONNECTED: "bus closed",
    State.CONNECTED: "bus open, torque off",
    State.ACTIVE: "torque on, commands flowing",
    State.SAFE_STOPPING: "holding, moving to rest, then releasing torque",
    State.SAFE_STOPPED: "stopped safely, run over",
    State.FAULT: "failed: the arm could not be driven to a safe stop",
}

S = State
ALLOWED: Mapping[State, frozenset[State]] = MappingProxyType({
    S.DISCONNECTED: frozenset({S.CONNECTED, S.FAULT}),
    S.CONNECTED: frozenset({S.ACTIVE, S.DISCONNECTED, S.SAFE_STOPPED, S.FAULT}),
    S.ACTIVE: frozenset({S.SAFE_STOPPING, S.FAULT}),
    S.SAFE_STOPPING: frozenset({S.SAFE_STOPPED, S.FAULT}),
    S.SAFE_STOPPED: frozenset({S.DISCONNECTED, S.FAULT}),
    S.FAULT: frozenset({S.DISCONNECTED}),
})
"""Allowed next states of each state (a move to the current state is a no-op, not listed here)."""

_ORDER = list(State)


def _names(states: Iterable[State]) -> str:
    return ", ".join(s.value for s in sorted(states, key=_ORDER.index))


class LifecycleError(RuntimeError):
    """A transition the table does not allow (a bug in the runtime, not a user error)."""


@dataclass(frozen=True, slots=True)
class Transition:
    t: float
    old: State
    new: State
    cause: str


Listener = Callable[[Transition], Any]


class Lifecycle:
    """The current ``state`` (starts ``DISCONNECTED``), its ``history`` and ``listeners``."""

    def __init__(self, clock: Clock, log: Any = None) -> None:
        self._clock = clock
        self._log = log if log is not None else structlog.get_logger(__name__)
        self._state = State.DISCONNECTED
        self._since = clock.now()
        self.history: list[Transition] = []
        self.listeners: list[Listener] = []
        self._waiters: list[tuple[frozenset[State], asyncio.Event, list[State]]] = []

    @property
    def state(self) -> State:
        return self._state

    @property
    def since(self) -> float:
        """When the current state was entered (construction time for the initial state)."""
        return self._since

    def allowed(self, state: State | None = None) -> frozenset[State]:
        """Where ``state`` (default: the current one) may go next."""
        return ALLOWED[self._state if state is None else state]

    def can(self, new: State) -> bool:
        return new == self._state or new in ALLOWED[self._state]

    def to(self, new: State, cause: str) -> Transition | None:
        """Move to ``new`` because of ``cause`` (a human-readable reason, required).

        Returns the Transition, or ``None`` when already in ``new``. Raises ``LifecycleError`` for a move
        the table does not allow, naming both states and the allowed targets.
        """
        new = State(new)
        if not isinstance(cause, str) or not cause.strip():
            raise ValueError("a lifecycle transition needs a cause: say why (e.g. 'bus opened on /dev/ttyACM0')")
        old = self._state
        if new == old:
            self._log.debug("lifecycle_unchanged", state=old.value, cause=cause)
            return None
        if new not in ALLOWED[old]:
            raise LifecycleError(
                f"lifecycle: cannot go from {old.value} to {new.value} (cause: {cause}); "
                f"from {old.value} the allowed next states are: {_names(ALLOWED[old])}"
            )
        tr = Transition(self._clock.now(), old, new, cause)
        self._state = new
        self._since = tr.t
        self.history.append(tr)
        log = self._log.error if new == State.FAULT else self._log.info
        log("lifecycle", old=old.value, new=new.value, cause=cause)
        for listener in list(self.listeners):
            try:
                listener(tr)
            except Exception:
                self._log.exception("lifecycle_listener_failed", listener=repr(listener), new=new.value)
        for targets, event, reached in self._waiters:
            if new in targets and not event.is_set():
                reached.append(new)
                event.set()
        return tr

    async def wait_for(self, states: State | Iterable[State]) -> State:
        """Wait until the lifecycle is in (or passes through) one of ``states``; return that state.

        Returns at once when already in one. A state entered and left again before the waiter runs still
        counts (each waiter has its own event, set by ``to``). Bound the wait with ``asyncio.timeout``.
        """
        targets = frozenset({State(states)} if isinstance(states, (State, str)) else (State(s) for s in states))
        if not targets:
            raise ValueError("wait_for needs at least one state")
        if self._state in targets:
            return self._state
        entry: tuple[frozenset[State], asyncio.Event, list[State]] = (targets, asyncio.Event(), [])
        self._waiters.append(entry)
        try:
            await entry[1].wait()
        finally:
            self._waiters.remove(entry)
        return entry[2][0]
