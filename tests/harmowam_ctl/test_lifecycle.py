"""The lifecycle's transition table, its errors, history, listeners, logging and wait_for."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest
from structlog.testing import capture_logs

from harmowam_ctl.clock import FakeClock
from harmowam_ctl.lifecycle import ALLOWED, Lifecycle, LifecycleError, State, Transition

S = State

EXPECTED = {
    (S.DISCONNECTED, S.CONNECTED), (S.DISCONNECTED, S.FAULT),
    (S.CONNECTED, S.ACTIVE), (S.CONNECTED, S.DISCONNECTED), (S.CONNECTED, S.SAFE_STOPPED), (S.CONNECTED, S.FAULT),
    (S.ACTIVE, S.SAFE_STOPPING), (S.ACTIVE, S.FAULT),
    (S.SAFE_STOPPING, S.SAFE_STOPPED), (S.SAFE_STOPPING, S.FAULT),
    (S.SAFE_STOPPED, S.DISCONNECTED), (S.SAFE_STOPPED, S.FAULT),
    (S.FAULT, S.DISCONNECTED),
}
ILLEGAL = [(a, b) for a in State for b in State if a != b and (a, b) not in EXPECTED]


def path_to(target: State) -> list[State]:
    """Shortest legal path from DISCONNECTED to ``target`` (BFS over the table)."""
    prev: dict[State, State | None] = {S.DISCONNECTED: None}
    todo = deque([S.DISCONNECTED])
    while todo:
        s = todo.popleft()
        for n in ALLOWED[s]:
            if n not in prev:
                prev[n] = s
                todo.append(n)
    out: list[State] = []
    cur: State | None = target
    while cur is not None and cur != S.DISCONNECTED:
        out.append(cur)
        cur = prev[cur]
    return out[::-1]


def in_state(state: State, clock: FakeClock | None = None) -> Lifecycle:
    lc = Lifecycle(clock or FakeClock())
    for s in path_to(state):
        lc.to(s, f"test: reach {s.value}")
    assert lc.state == state
    return lc


def test_table_is_the_documented_one() -> None:
    got = {(a, b) for a, targets in ALLOWED.items() for b in targets}
    assert got == EXPECTED
    assert set(ALLOWED) == set(State)
    # ACTIVE never drops torque directly
    assert S.CONNECTED not in ALLOWED[S.ACTIVE] and S.DISCONNECTED not in ALLOWED[S.ACTIVE]


def test_starts_disconnected_with_empty_history() -> None:
    clock = FakeClock(5.0)
    lc = Lifecycle(clock)
    assert lc.state == S.DISCONNECTED and lc.history == [] and lc.since == 5.0


@pytest.mark.parametrize(("old", "new"), sorted(EXPECTED, key=lambda p: (p[0].value, p[1].value)))
def test_every_legal_transition(old: State, new: State) -> None:
    clock = FakeClock(100.0)
    lc = in_state(old, clock)
    n = len(lc.history)
    clock.advance(1.5)
    tr = lc.to(new, "because the test says so")
    assert tr == Transition(101.5, old, new, "because the test says so")
    assert lc.state == new and lc.since == 101.5
    assert lc.history[-1] == tr and len(lc.history) == n + 1
    assert lc.can(new) is True


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_illegal_transitions_raise_naming_states_and_targets(old: State, new: State) -> None:
    lc = in_state(old)
    calls: list[Transition] = []
    lc.listeners.append(calls.append)
    history = list(lc.history)
    with pytest.raises(LifecycleError) as err:
        lc.to(new, "bad idea")
    msg = str(err.value)
    assert f"from {old.value} to {new.value}" in msg
    assert "bad idea" in msg
    allowed_part = msg.split("allowed next states are:")[1]
    for target in ALLOWED[old]:
        assert target.value in allowed_part
    for other in set(State) - ALLOWED[old]:
        assert other.value not in allowed_part.replace(",", " ").split()
    assert lc.state == old and lc.history == history and calls == []
    assert lc.can(new) is False


def test_active_to_connected_message() -> None:
    lc = in_state(S.ACTIVE)
    with pytest.raises(LifecycleError, match="allowed next states are: safe_stopping, fault$"):
        lc.to(S.CONNECTED, "torque off")


def test_same_state_is_a_noop() -> None:
    lc = in_state(S.SAFE_STOPPING)
    calls: list[Transition] = []
    lc.listeners.append(calls.append)
    n = len(lc.history)
    assert lc.to(S.SAFE_STOPPING, "second Ctrl+C") is None
    assert lc.state == S.SAFE_STOPPING and len(lc.history) == n and calls == []
    lc.to(S.FAULT, "bus died")
    assert lc.to(S.FAULT, "bus still dead") is None


@pytest.mark.parametrize("cause", ["", "   "])
def test_a_cause_is_required(cause: str) -> None:
    lc = Lifecycle(FakeClock())
    with pytest.raises(ValueError, match="needs a cause"):
        lc.to(S.CONNECTED, cause)
    assert lc.state == S.DISCONNECTED


def test_strings_are_accepted_and_unknown_states_rejected() -> None:
    lc = Lifecycle(FakeClock())
    lc.to("connected", "bus opened")  # type: ignore[arg-type]
    assert lc.state is S.CONNECTED
    with pytest.raises(ValueError):
        lc.to("flying", "why not")  # type: ignore[arg-type]


def test_history_and_listeners_see_every_transition_in_order() -> None:
    clock = FakeClock(0.0)
    lc = Lifecycle(clock)
    seen_a: list[Transition] = []
    seen_b: list[tuple[State, State]] = []
    lc.listeners.append(seen_a.append)
    lc.listeners.append(lambda tr: seen_b.append((tr.old, tr.new)))
    steps = [(S.CONNECTED, "bus opened"), (S.ACTIVE, "torque on"), (S.SAFE_STOPPING, "Ctrl+C"),
             (S.SAFE_STOPPED, "at rest, torque off"), (S.DISCONNECTED, "bus closed")]
    for i, (s, cause) in enumerate(steps):
        clock.set(float(i + 1))
        lc.to(s, cause)
    assert [(tr.t, tr.new, tr.cause) for tr in lc.history] == [
        (float(i + 1), s, c) for i, (s, c) in enumerate(steps)
    ]
    assert seen_a == lc.history
    assert seen_b == [(tr.old, tr.new) for tr in lc.history]
    assert lc.history[0].old == S.DISCONNECTED


def test_listener_sees_the_new_state_and_a_failing_listener_does_not_stop_others() -> None:
    lc = Lifecycle(FakeClock())
    states: list[State] = []

    def broken(tr: Transition) -> None:
        raise RuntimeError("telemetry down")

    lc.listeners.extend([broken, lambda tr: states.append(lc.state)])
    with capture_logs() as logs:
        tr = lc.to(S.CONNECTED, "bus opened")
    assert tr is not None and lc.state == S.CONNECTED and states == [S.CONNECTED]
    assert any(e["event"] == "lifecycle_listener_failed" for e in logs)


def test_transitions_are_logged_with_their_cause() -> None:
    with capture_logs() as logs:
        lc = Lifecycle(FakeClock())
        lc.to(S.CONNECTED, "bus opened on /dev/ttyACM0")
        lc.to(S.FAULT, "bus vanished")
    events = [e for e in logs if e["event"] == "lifecycle"]
    assert [(e["old"], e["new"], e["cause"], e["log_level"]) for e in events] == [
        ("disconnected", "connected", "bus opened on /dev/ttyACM0", "info"),
        ("connected", "fault", "bus vanished", "error"),
    ]


def test_custom_log_is_used() -> None:
    calls: list[tuple[str, dict]] = []

    class Log:
        def info(self, event: str, **kw: object) -> None:
            calls.append((event, kw))

        error = debug = exception = info

    lc = Lifecycle(FakeClock(), log=Log())
    lc.to(S.CONNECTED, "x")
    assert calls == [("lifecycle", {"old": "disconnected", "new": "connected", "cause": "x"})]


def test_descriptions() -> None:
    assert S.CONNECTED.description == "bus open, torque off"
    assert all(s.description for s in State)


async def test_wait_for_returns_at_once_when_already_there() -> None:
    lc = in_state(S.ACTIVE)
    assert await asyncio.wait_for(lc.wait_for(S.ACTIVE), 1.0) == S.ACTIVE
    assert await asyncio.wait_for(lc.wait_for([S.FAULT, S.ACTIVE]), 1.0) == S.ACTIVE


async def test_wait_for_wakes_on_the_transition() -> None:
    lc = in_state(S.CONNECTED)
    waiter = asyncio.create_task(lc.wait_for({S.SAFE_STOPPED, S.FAULT}))
    await asyncio.sleep(0)
    lc.to(S.ACTIVE, "torque on")
    await asyncio.sleep(0)
    assert not waiter.done()
    lc.to(S.FAULT, "bus died")
    assert await asyncio.wait_for(waiter, 1.0) == S.FAULT
    assert lc._waiters == []


async def test_wait_for_sees_a_state_passed_through_before_it_ran() -> None:
    lc = in_state(S.ACTIVE)
    waiter = asyncio.create_task(lc.wait_for(S.SAFE_STOPPING))
    await asyncio.sleep(0)
    lc.to(S.SAFE_STOPPING, "Ctrl+C")
    lc.to(S.SAFE_STOPPED, "at rest")  # synchronously, before the waiter could run
    assert await asyncio.wait_for(waiter, 1.0) == S.SAFE_STOPPING


async def test_wait_for_can_time_out_and_cleans_up() -> None:
    lc = in_state(S.CONNECTED)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await lc.wait_for(S.ACTIVE)
    assert lc._waiters == []
    with pytest.raises(ValueError):
        await lc.wait_for([])
