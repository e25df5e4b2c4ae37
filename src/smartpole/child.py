"""A worker process of our own that answers messages in order, over its stdin and stdout.

The parent starts ``python -m <module>`` and talks to it over the child's stdin and stdout:
each message is a 4-byte big-endian length and a pickle (the child is our own process, started
with our own interpreter, so pickles are safe here and never cross a network). The first
message a new child gets is its *seed*, built by the parent; the child answers every message
with one reply, in order.

The parent keeps what it must not lose: when the child dies (killed, out of memory, a bug),
:class:`Child` starts another, seeds it and sends again the message that was not answered. A
child that answers :class:`Failure` may be half changed: it is replaced the same way, and a
message that fails twice is given up (an error to the caller) so one bad message cannot stop
the work for ever.

Used by the hub's rule evaluation (``hub/worker.py``) and the anomaly detector
(``hub/analytics/anomaly_worker.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from smartpole.runtime import tune_collector

__all__ = ["Child", "ChildStatus", "Failure", "read_frame", "serve", "write_frame"]

log = logging.getLogger(__name__)
S = TypeVar("S")
_HEADER = struct.Struct(">I")
RESTART_BACKOFF_S = 0.5  # the wait before starting a child again after one died seeding
DEATHS_PER_MESSAGE = 3  # children that may die on one message before it is given up


@dataclass(frozen=True, slots=True)
class Failure:
    """A child's answer when handling a message raised (the parent replaces the child)."""

    error: str


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """How a worker process is doing (``/healthz``)."""

    pid: int | None
    alive: bool
    restarts: int


class ChildDied(Exception):
    """The child process ended or broke the protocol."""


# -- the frames, and the child's side ---------------------------------------------------
def read_frame(stream: IO[bytes]) -> Any:
    """One message (None at the end of the stream)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:  # the other end died writing it
        return None
    return pickle.loads(body)  # noqa: S301 - from our own process, over a pipe


def write_frame(stream: IO[bytes], obj: Any) -> None:
    """Send one message."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def serve(name: str, answer: Callable[[S | None, Any], tuple[S | None, Any]]) -> None:
    """Answer the parent's messages until it closes stdin: ``answer(state, message)`` returns
    the state from then on (``None`` before the seed) and the reply."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    tune_collector()
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not break a frame
    requests = sys.stdin.buffer
    state: S | None = None
    while (message := read_frame(requests)) is not None:
        try:
            state, reply = answer(state, message)
        except Exception as err:
            log.exception("%s: a message failed", name)
            reply = Failure(repr(err))
        write_frame(replies, reply)


# -- the parent's side ------------------------------------------------------------------
class Child:
    """A worker process as its parent sees it: one message at a time, answered in order.

    ``seed`` builds the first message of a new child from the parent's own copy of what must
    survive (called after every answer was applied); ``on_reply`` applies an answer, called
    before the next message can be sent; ``on_restart`` counts a restart.
    """

    def __init__(
        self,
        module: str,
        name: str,
        seed: Callable[[], Any],
        on_reply: Callable[[Any, Any], None] = lambda message, reply: None,
        on_restart: Callable[[], None] = lambda: None,
    ) -> None:
        self.module = module
        self.name = name
        self._seed = seed
        self._on_reply = on_reply
        self._on_restart = on_restart
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._running = False
        self.restarts = 0

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a message is out: hold it to change what the child was seeded with."""
        return self._lock

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._running

    def status(self) -> ChildStatus:
        """Its process id, whether it runs, how often it was restarted."""
        proc = self._proc
        alive = proc is not None and proc.returncode is None
        return ChildStatus(None if proc is None else proc.pid, alive, self.restarts)

    async def start(self) -> None:
        """Start the process and seed it; a child that cannot start (three tries) is an error
        here, where the platform starts, rather than work that waits for ever."""
        async with self._lock:
            await self._spawn(attempts=3)
            self._running = True

    async def stop(self) -> None:
        """Close its input and wait for it to end (kill it if it does not)."""
        async with self._lock:
            self._running = False
            await self._end()

    async def reseed(self) -> None:
        """Send the seed again (after the parent changed it); the caller holds :attr:`lock`."""
        if self._running:
            await self._send(self._seed())

    async def call(self, message: Any) -> Any:
        """Send one message and apply its answer, restarting the child until it answers."""
        async with self._lock:
            return await self._send(message)

    async def _send(self, message: Any) -> Any:
        failures = 0
        while True:
            if self._proc is None or self._proc.returncode is not None:
                await self._restart(failures)
            try:
                reply = await self._exchange(message)
            except ChildDied as err:
                failures += 1
                log.warning("%s %s died (%s): restarting", self.name, self._pid(), err)
                await self._end()
                if failures >= DEATHS_PER_MESSAGE:  # it is this message that kills them
                    raise RuntimeError(f"{self.name} died {failures} times on one message") from err
                continue
            if isinstance(reply, Failure):
                failures += 1
                log.warning("%s failed (%s): restarting it", self.name, reply.error)
                await self._end()  # its state may be half changed: seed a new one
                if failures > 1:  # it fails again on the same message: skip the message
                    raise RuntimeError(f"{self.name}: {reply.error}")
                continue
            self._on_reply(message, reply)
            return reply

    def _pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def _restart(self, failures: int) -> None:
        self.restarts += 1
        self._on_restart()
        if failures > 1:
            await asyncio.sleep(RESTART_BACKOFF_S * min(failures, 10))
        await self._spawn()

    async def _spawn(self, attempts: int | None = None) -> None:
        """A new process, seeded; retried until one takes the seed (or ``attempts`` tried)."""
        tried = 0
        while True:
            tried += 1
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                reply = await self._exchange(self._seed())
            except ChildDied as err:
                reply = Failure(str(err))
            if not isinstance(reply, Failure):
                return
            log.warning("%s could not be seeded (%s): starting another", self.name, reply)
            await self._end()
            if attempts is not None and tried >= attempts:
                raise RuntimeError(f"the {self.name} could not start: {reply}")
            await asyncio.sleep(RESTART_BACKOFF_S)

    async def _exchange(self, message: Any) -> Any:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc.stdin.write(_HEADER.pack(len(data)) + data)
            await proc.stdin.drain()
            header = await proc.stdout.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            body = await proc.stdout.readexactly(size)
        except (ConnectionError, asyncio.IncompleteReadError) as err:
            raise ChildDied(repr(err)) from err
        return pickle.loads(body)  # noqa: S301 - from our own child, over a pipe

    async def _end(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
