"""The servo tick's record store (``TickStore``), used by ``harmowam_ctl.telemetry``.

Ticks go into numpy columns held in blocks whose capacity doubles (256, 512, ... 16384 rows); a full
block is never copied, the next one is added, so no tick pays for moving the history. Joint values are
stored as float32, times as float64; reasons and filter flags are interned (a code / a bit mask per
tick). When ``max_ticks`` are held, the oldest half is dropped (an O(1) pointer move).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harmowam_ctl.types import N_JOINTS, Source

SOURCES: tuple[Source, ...] = tuple(Source)  # a tick's source code is the index in this tuple
_SOURCE_CODE: dict[Any, int] = {s: i for i, s in enumerate(SOURCES)}
_T_SCHED, _T_START, _T_END, _STATE_T, _E2E, _AGE = range(6)
_PRESENT, _TARGET, _REQUESTED = range(3)
_FIRST_BLOCK, _MAX_BLOCK = 256, 16384
_MAX_REASONS = 1024  # distinct reason strings kept; more are stored as OTHER_REASON
OTHER_REASON = "(other reason)"
_MAX_FLAGS = 62  # flag names with their own bit (0..61); more share bit 62, OTHER_FLAG
OTHER_FLAG = "(other flag)"


@dataclass(slots=True)
class TickRecord:
    """One servo tick. Times are monotonic seconds; joint values radians (6, JOINT_NAMES order).

    ``requested``: the targets before the safety filter (``None``: same as ``target`` / none asked);
    ``e2e_s``: capture of the camera frame -> this command, set only on the first tick that uses a chunk
    from a new observation; ``chunk_age_s``: now minus the used chunk's observation time."""

    t_sched: float
    t_start: float
    t_end: float
    state_t: float
    present: np.ndarray
    target: np.ndarray
    source: Source
    reason: str = ""
    requested: np.ndarray | None = None
    filter_flags: frozenset[str] = frozenset()
    e2e_s: float | None = None
    chunk_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class TickColumns:
    """Retained ticks as arrays (n rows); None values are NaN; ``source`` holds codes into SOURCES,
    ``reason`` codes into ``reasons``, ``flags`` bit masks (bit i = ``flag_names[i]``)."""

    t_sched: np.ndarray
    t_start: np.ndarray
    t_end: np.ndarray
    state_t: np.ndarray
    e2e_s: np.ndarray
    chunk_age_s: np.ndarray
    present: np.ndarray
    target: np.ndarray
    requested: np.ndarray
    source: np.ndarray
    reason: np.ndarray
    flags: np.ndarray
    reasons: tuple[str, ...]
    flag_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.t_start.shape[0])


class _Block:
    __slots__ = ("start", "size", "times", "joints", "source", "reason", "flags")

    def __init__(self, start: int, size: int) -> None:
        self.start, self.size = start, size
        self.times = np.empty((size, 6), np.float64)
        self.joints = np.empty((size, 3, N_JOINTS), np.float32)
        self.source = np.empty(size, np.int8)
        self.reason = np.empty(size, np.int32)
        self.flags = np.empty(size, np.int64)


class TickStore:
    """Append-only tick columns in doubling blocks; keeps at most ``max_ticks`` (drops the oldest half).

    ``n`` counts every tick ever stored, ``first`` is the global index of the oldest retained one. One
    writer (the event loop); a reader thread may call ``read`` concurrently: rows below ``n`` are complete
    (``n`` moves after the row is written) and blocks are only ever appended or dropped whole."""

    def __init__(self, max_ticks: int) -> None:
        self.max_ticks = max_ticks
        self.n = 0
        self.first = 0
        self._blocks: list[_Block] = []
        self._cur: _Block | None = None
        self._ci = self._csize = 0
        self.reasons: list[str] = []
        self._reason_code: dict[str, int] = {}
        self.flag_names: list[str] = []
        self._mask_of: dict[frozenset[str], int] = {}
        self.mask_counts: dict[int, int] = {}

    def append(self, rec: TickRecord) -> None:
        i = self._ci
        if i >= self._csize:
            self._new_block()
            i = 0
        b = self._cur
        assert b is not None
        e2e, age = rec.e2e_s, rec.chunk_age_s
        b.times[i] = (rec.t_sched, rec.t_start, rec.t_end, rec.state_t,
                      math.nan if e2e is None else e2e, math.nan if age is None else age)
        j = b.joints[i]
        j[_PRESENT] = rec.present
        j[_TARGET] = rec.target
        j[_REQUESTED] = math.nan if rec.requested is None else rec.requested
        code = _SOURCE_CODE.get(rec.source)
        if code is None:
            raise ValueError(f"tick source must be one of {[s.value for s in SOURCES]}, got {rec.source!r}")
        b.source[i] = code
        r = self._reason_code.get(rec.reason)
        b.reason[i] = r if r is not None else self._intern(rec.reason)
        ff = rec.filter_flags
        if ff:
            m = self._mask_of.get(ff)
            if m is None:
                m = self._mask(ff)
            self.mask_counts[m] = self.mask_counts.get(m, 0) + 1
            b.flags[i] = m
        else:
            b.flags[i] = 0
        self._ci = i + 1
        self.n += 1
        if self.n - self.first >= self.max_ticks:
            self._drop_oldest_half()

    def _new_block(self) -> None:
        size = _FIRST_BLOCK if self._cur is None else min(self._csize * 2, _MAX_BLOCK)
        self._cur = _Block(self.n, size)
        self._blocks.append(self._cur)
        self._ci, self._csize = 0, size

    def _drop_oldest_half(self) -> None:
        self.first += self.max_ticks // 2
        while self._blocks and self._blocks[0].start + self._blocks[0].size <= self.first:
            self._blocks.pop(0)

    def _intern(self, reason: str) -> int:
        if not isinstance(reason, str):
            raise ValueError(f"tick reason must be a str, got {type(reason).__name__}")
        if len(self.reasons) >= _MAX_REASONS:
            reason = OTHER_REASON
            if reason in self._reason_code:
                return self._reason_code[reason]
        self._reason_code[reason] = len(self.reasons)
        self.reasons.append(reason)
        return self._reason_code[reason]

    def _mask(self, flags: frozenset[str]) -> int:
        m = 0
        for f in flags:
            if f not in self.flag_names and len(self.flag_names) < _MAX_FLAGS:
                self.flag_names.append(str(f))
            elif f not in self.flag_names:
                f = OTHER_FLAG
                if OTHER_FLAG not in self.flag_names:
                    self.flag_names.append(OTHER_FLAG)
            m |= 1 << self.flag_names.index(f)
        if len(self._mask_of) < 4096:
            self._mask_of[flags] = m
        return m

    def last_starts(self, k: int) -> np.ndarray:
        """``t_start`` of the newest ``k`` retained ticks (cheap: touches the last blocks only)."""
        n, out = self.n, []
        lo = max(self.first, n - k)
        for b in reversed(list(self._blocks)):
            a, z = max(lo, b.start), min(n, b.start + b.size)
            if z > a:
                out.append(b.times[a - b.start:z - b.start, _T_START])
            if b.start <= lo:
                break
        return np.concatenate(out[::-1]) if out else np.empty(0)

    def read(self, lo: int | None = None) -> tuple[TickColumns, int]:
        """Rows from global index ``lo`` (default: the oldest retained) up to ``n``; returns the columns
        and the index after the last row (the next ``lo``). Dropped rows are skipped."""
        n = self.n  # read before the blocks: every row below it is complete
        blocks = list(self._blocks)
        lo = max(self.first if lo is None else lo, self.first)
        parts: list[tuple[_Block, int, int]] = []
        for b in blocks:
            a, z = max(lo, b.start), min(n, b.start + b.size)
            if z > a:
                parts.append((b, a - b.start, z - b.start))

        def cat(get: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            if not parts:
                return np.empty((0, *shape), dtype)
            return np.concatenate([get(b)[a:z] for b, a, z in parts])

        times = cat(lambda b: b.times, (6,), np.float64)
        joints = cat(lambda b: b.joints, (3, N_JOINTS), np.float32).astype(np.float64)
        cols = TickColumns(
            t_sched=times[:, _T_SCHED], t_start=times[:, _T_START], t_end=times[:, _T_END],
            state_t=times[:, _STATE_T], e2e_s=times[:, _E2E], chunk_age_s=times[:, _AGE],
            present=joints[:, _PRESENT], target=joints[:, _TARGET], requested=joints[:, _REQUESTED],
            source=cat(lambda b: b.source, (), np.int8), reason=cat(lambda b: b.reason, (), np.int32),
            flags=cat(lambda b: b.flags, (), np.int64),
            reasons=tuple(self.reasons), flag_names=tuple(self.flag_names),
        )
        return cols, max(n, lo)
