"""The process mode of ``harmowam_ctl.inference.PolicyRunner``: the policy in a child process.

Parent side (``ProcessBackend``, on the event loop): the child is started with the ``spawn`` context
(from a helper thread: starting a process takes tens of ms). Two one-way pipes; the loop reads and
writes them through asyncio's non-blocking pipe transports and watches the child's sentinel with
``add_reader``, so nothing on the loop ever waits for the child. Messages are length-prefixed pickles
(8-byte big-endian length): parent -> child ``(op, id, payload)`` with op ``predict``/``act``/``reset``/
``cancel``/``close``; child -> parent ``(kind, id, payload)`` with kind ``ready``/``build_error``/``ok``/
``err``.

Child side (``child_main``): ignores SIGINT (the parent decides when it stops), builds the policy
(``policies.registry.build``; ``torch.set_num_threads`` happens there), reports ``ready`` or
``build_error``, then its main thread reads requests and queues them to two stage threads (``predict``;
``act`` + ``reset``), each replying when done (replies are written whole under a lock). A predict's
latent is kept under a key (the last ``history``), the reply carries the key instead. A request the
parent cancelled before it started is skipped. ``close`` or EOF on the request pipe (the parent is
gone): the child exits at once with ``os._exit`` (stage threads that hang do not keep it alive).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import threading
import traceback
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

import structlog

from harmowam_ctl.inference import PolicyError, build_error, call_error, describe, lower_priority, run_op, settle
from policies.interface import Observation, WorldPrediction
from policies.registry import PolicySpec

log = structlog.get_logger(__name__)

HEADER = struct.Struct("!Q")


def frame(msg: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def exit_message(code: int | None) -> str:
    if code is None:
        what = "policy process exited (exit code unknown)"
    elif code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        what = f"policy process exited with code {code} (killed by {sig})"
    else:
        what = f"policy process exited with code {code}"
    return what + "; the policy crashed or was killed (out of memory? a fault in native code?): close this runner and start a new one"


class _Reader(asyncio.Protocol):
    """Splits the child's byte stream into messages."""

    def __init__(self, backend: ProcessBackend) -> None:
        self.backend = backend
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= HEADER.size:
            (n,) = HEADER.unpack_from(self.buf)
            if len(self.buf) < HEADER.size + n:
                return
            msg = pickle.loads(self.buf[HEADER.size : HEADER.size + n])
            del self.buf[: HEADER.size + n]
            self.backend.on_message(msg)

    def eof_received(self) -> bool:
        self.backend.eof = True  # every reply has been read; the sentinel tells how the child ended
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.backend.eof = True


class ProcessBackend:
    """The policy in a child process (module doc)."""

    def __init__(
        self, spec: PolicySpec, history: int, start_timeout_s: float, close_timeout_s: float, nice: int = 0
    ) -> None:
        self.spec, self.history, self.nice = spec, history, nice
        self.start_timeout_s, self.close_timeout_s = start_timeout_s, close_timeout_s
        self.proc: multiprocessing.process.BaseProcess | None = None
        self._pid: int | None = None
        self.exitcode: int | None = None  # once the child is gone
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._dead: str | None = None  # the exit message once the child is gone
        self.eof = False  # the reply pipe has ended (all the child's replies are in)
        self._closing = False
        self._ready: asyncio.Future[Any] | None = None
        self._exited: asyncio.Future[None] | None = None
        self._rt: asyncio.ReadTransport | None = None
        self._wt: asyncio.WriteTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self._dead is None

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("spawn")
        req_r, req_w = ctx.Pipe(duplex=False)
        rep_r, rep_w = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=child_main,
            args=(self.spec, req_r, rep_w, self.history, self.nice),
            name=f"policy-{self.spec.name}",
            daemon=True,
        )
        try:
            await asyncio.to_thread(self.proc.start)
        finally:
            req_r.close()  # the child's ends: EOF reaches each side when the other goes away
            rep_w.close()
        self._pid = self.proc.pid
        self._ready, self._exited = loop.create_future(), loop.create_future()
        self._rt, _ = await loop.connect_read_pipe(lambda: _Reader(self), _own_file(rep_r, "rb"))
        self._wt, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, _own_file(req_w, "wb"))
        loop.add_reader(self.proc.sentinel, self._on_exit)
        try:
            async with asyncio.timeout(self.start_timeout_s):
                info = await self._ready
        except TimeoutError:
            why = f"the policy process was not ready within {self.start_timeout_s} s"
            raise build_error(self.spec.name, "process", why) from None
        log.debug("policy process ready", pid=self.pid, **info)

    # --- messages --------------------------------------------------------------------------------------

    def submit(self, op: str, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        if self._dead is not None:
            raise PolicyError(self._dead)
        assert self._loop is not None and self._wt is not None
        if op == "act":
            pred, obs = args
            args = (dataclasses.replace(pred, latent=None, frames=None), obs)
        if op in ("predict", "act"):  # mapping views (MappingProxyType) do not pickle
            obs = args[-1]
            if isinstance(obs, Observation):
                obs = dataclasses.replace(obs, images=dict(obs.images), image_t=dict(obs.image_t))
                args = (*args[:-1], obs)
        rid = next(self._ids)
        fut = self._loop.create_future()
        self._pending[rid] = (op, fut)
        fut.add_done_callback(lambda f, rid=rid: self._done(rid, f))
        self._wt.write(frame((op, rid, args)))
        return fut

    def _done(self, rid: int, fut: asyncio.Future[Any]) -> None:
        self._pending.pop(rid, None)
        wt = self._wt
        if fut.cancelled() and self._dead is None and not self._closing and wt is not None and not wt.is_closing():
            wt.write(frame(("cancel", rid, None)))

    def on_message(self, msg: tuple[str, int, Any]) -> None:
        kind, rid, payload = msg
        if kind == "ready" and self._ready is not None:
            settle(self._ready, payload, None)
        elif kind == "build_error" and self._ready is not None:
            settle(self._ready, None, build_error(self.spec.name, "process", payload))
        elif kind in ("ok", "err"):
            op, fut = self._pending.get(rid, ("", None))
            if fut is None:
                return  # cancelled by the caller
            if kind == "ok":
                settle(fut, payload, None)
            else:
                settle(fut, None, call_error(self.spec.name, op, payload[0], payload[1]))

    def _on_exit(self, tries: int = 0) -> None:
        assert self._loop is not None and self.proc is not None
        if tries == 0:
            self._loop.remove_reader(self.proc.sentinel)
        code = self.proc.exitcode  # non-blocking poll
        # the sentinel can close a moment before the exit status exists, or before the last replies
        # (a build error) have been read: wait for both, 2 s at most
        if (code is None or not self.eof) and tries < 200:
            self._loop.call_later(0.01, self._on_exit, tries + 1)
            return
        self._dead = exit_message(code)
        self.exitcode = code
        if not self._closing:
            log.error("policy process died", pid=self.pid, exit_code=code)
        why = "the policy runner was closed while this call waited" if self._closing else self._dead
        for _, fut in list(self._pending.values()):
            settle(fut, None, PolicyError(why))
        if self._ready is not None and not self._ready.done():
            why = f"the policy process exited with code {code} before it was ready"
            hint = "its error output says why (a program that starts policy processes needs `if __name__ == '__main__':`)"
            settle(self._ready, None, build_error(self.spec.name, "process", why, hint))
        if self._exited is not None:
            settle(self._exited, None, None)

    # --- stopping --------------------------------------------------------------------------------------

    async def _wait_exit(self, timeout: float) -> bool:
        if self._exited is None or self._exited.done():
            return True
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._exited)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        self._closing = True
        proc = self.proc
        if proc is not None and self._dead is None and self._exited is not None:
            if self._wt is not None and not self._wt.is_closing():
                self._wt.write(frame(("close", 0, None)))
            if not await self._wait_exit(self.close_timeout_s):
                log.warning("policy process did not stop when asked: terminating", pid=proc.pid)
                proc.terminate()
                if not await self._wait_exit(self.close_timeout_s):
                    log.warning("policy process did not terminate: killing", pid=proc.pid)
                    proc.kill()
                    await self._wait_exit(self.close_timeout_s)
        for _, fut in list(self._pending.values()):
            settle(fut, None, PolicyError("the policy runner was closed while this call waited"))
        if self._dead is None:
            self._dead = "the policy runner is closed; start a new one"
        for t in (self._rt, self._wt):
            if t is not None:
                t.close()
        if proc is not None and self._exited is not None:
            if self._exited.done() and self.exitcode is not None:
                proc.close()  # frees its sentinel
            elif not self._exited.done():
                assert self._loop is not None
                self._loop.remove_reader(proc.sentinel)  # still running after a kill (should not happen)
                log.error("policy process survived SIGKILL", pid=self._pid)


def _own_file(conn: Connection, mode: str) -> Any:
    """A file object owning a duplicate of ``conn``'s descriptor (for asyncio's pipe transports)."""
    f = os.fdopen(os.dup(conn.fileno()), mode, buffering=0)
    conn.close()
    return f


# --- the child ---------------------------------------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, got = [], 0
    while got < n:
        b = os.read(fd, n - got)
        if not b:
            return None
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def child_main(spec: PolicySpec, req: Connection, rep: Connection, history: int, nice: int = 0) -> None:
    """The policy process (module doc). Never returns: exits with ``os._exit``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from harmowam_ctl import logs

    logs.configure(None, bool(os.environ.get("HARMOWAM_LOG_JSON")))  # stderr, the parent's level: stdout stays clean
    lower_priority(nice)  # before any thread starts: they all inherit it
    rfd, wfd = req.fileno(), rep.fileno()
    wlock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        try:
            data = frame(msg)
        except Exception as e:  # noqa: BLE001 - a result that does not pickle
            data = frame(("err", msg[1], (f"its result cannot be sent to the runner: {describe(e)}", "")))
        with wlock:
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view) :]

    try:
        from policies.registry import build

        policy = build(spec)
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        send(("build_error", 0, describe(e)))
        os._exit(0)
    send(("ready", 0, {"name": getattr(policy, "name", spec.name)}))

    latents: OrderedDict[int, Any] = OrderedDict()
    latents_lock = threading.Lock()
    keys = itertools.count(1)
    cancelled: set[int] = set()

    def call(op: str, args: tuple[Any, ...]) -> Any:
        if op == "act":
            pred, obs = args
            if pred.key:
                with latents_lock:
                    if pred.key not in latents:
                        raise KeyError(
                            f"prediction {pred.key} is gone: the policy process keeps the last {history} "
                            "predictions; act on a newer one"
                        )
                    latent = latents[pred.key]
                args = (dataclasses.replace(pred, latent=latent), obs)
        out = run_op(policy, op, args)
        if op == "predict":
            assert isinstance(out, WorldPrediction)
            key = next(keys)
            with latents_lock:
                latents[key] = out.latent
                while len(latents) > history:
                    latents.popitem(last=False)
            out = dataclasses.replace(out, latent=None, key=key)
        return out

    def stage(jobs: queue.SimpleQueue[tuple[str, int, Any]]) -> None:
        while True:
            op, rid, args = jobs.get()
            if rid in cancelled:
                cancelled.discard(rid)
                continue
            try:
                send(("ok", rid, call(op, args)))
            except Exception as e:  # noqa: BLE001 - goes back to the caller
                send(("err", rid, (describe(e), traceback.format_exc())))
            cancelled.discard(rid)  # cancelled while it ran

    queues: dict[str, queue.SimpleQueue[tuple[str, int, Any]]] = {"predict": queue.SimpleQueue(), "act": queue.SimpleQueue()}
    for name, q in queues.items():
        threading.Thread(target=stage, args=(q,), name=f"policy-{name}", daemon=True).start()
    while True:
        head = _read_exact(rfd, HEADER.size)
        body = None if head is None else _read_exact(rfd, HEADER.unpack(head)[0])
        if body is None:
            break  # the parent is gone
        op, rid, payload = pickle.loads(body)
        if op == "close":
            break
        if op == "cancel":
            cancelled.add(rid)
        else:
            queues["predict" if op == "predict" else "act"].put((op, rid, payload))
    os._exit(0)
