"""hardware.realtime: SCHED_FIFO with reset-on-fork for the tick's threads, or a refusal that says how
to allow it. Both outcomes are checked for what they are: this machine may or may not permit it."""

from __future__ import annotations

import threading

import pytest

from hardware import realtime


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(5.0)
    return out[0]


def test_priority_out_of_range_is_refused() -> None:
    for bad in (0, 100, -1):
        with pytest.raises(ValueError, match="1..99"):
            realtime.set_realtime(bad)


def test_permitted_probe_changes_nothing_here() -> None:
    before = realtime.is_realtime()
    realtime.permitted()
    assert realtime.is_realtime() == before is False


def test_granted_or_refused_with_the_fix_and_children_start_normal() -> None:
    allowed = realtime.permitted(10)

    def scenario():
        why = realtime.set_realtime(10)
        me = realtime.is_realtime()
        child = _in_thread(realtime.is_realtime)  # a thread this one starts
        realtime.set_normal()
        return why, me, child, realtime.is_realtime()

    why, me, child, after = _in_thread(scenario)
    if allowed:
        assert why is None and me is True
        assert child is False  # SCHED_RESET_ON_FORK: heavy work started from a tick thread is not real-time
    else:
        assert me is False and "rtprio" in why and "--no-realtime" in why
    assert after is False


def test_a_refusal_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    def refuse(*_a):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    why = realtime.set_realtime(50)
    assert "not permitted" in why and "limits.d" in why and "--no-realtime" in why
    assert realtime.permitted() is False


def test_policy_niceness_follows_whether_the_tick_gets_real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from harmowam_ctl import runconfig
    from harmowam_ctl.setup import policy_nice

    cfg = runconfig.load(None, {"sim": True, "policy": "synthetic"})
    monkeypatch.setattr(realtime, "permitted", lambda priority=50: True)
    assert policy_nice(cfg) == 0
    assert policy_nice(cfg.model_copy(update={"realtime": False})) == 10
    assert policy_nice(cfg.model_copy(update={"policy_nice": 5})) == 5
    monkeypatch.setattr(realtime, "permitted", lambda priority=50: False)
    assert policy_nice(cfg) == 10


def test_kept_scheduling_puts_the_thread_back() -> None:
    allowed = realtime.permitted(10)

    def scenario():
        with realtime.kept_scheduling():
            changed = realtime.set_realtime(10) is None  # what an encoder may do to its caller
            inside = realtime.is_realtime()
        return changed, inside, realtime.is_realtime()

    changed, inside, after = _in_thread(scenario)
    assert changed is allowed and inside is allowed
    assert after is False
