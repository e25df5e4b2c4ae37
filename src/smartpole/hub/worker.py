"""Rule evaluation in a process of its own, so that ingest and the rules use two cores.

The hub (``hub/engine.py``) starts ``python -m smartpole.hub.worker`` as its child and talks
to it over the child's stdin and stdout: each message is a 4-byte big-endian length and a
pickle (the child is our own process, started with our own interpreter, so pickles are safe
here and never cross a network). The hub sends a :class:`Seed` (rules as stored, the
registry, rule states, latest values), then committed batches, registry updates and timer
ticks, one at a time; the worker answers each with an
:class:`~smartpole.hub.evaluator.Outcome` (or ``None``).

The hub keeps the authoritative rule states and latest values: it applies every answer to its
own copy before it sends the next message. So when the worker dies (killed, out of memory, a
bug), :class:`HubWorker` starts another, seeds it from that copy and sends again the message it
had not answered: no committed reading goes unchecked, no rule state is lost.
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
from typing import IO, Any, NamedTuple

from smartpole.hub.directory import Directory
from smartpole.hub.evaluator import Evaluator, Latest, Outcome, RuleKey, State, compile_rules
from smartpole.model.rules import StoredRule
from smartpole.model.types import Reading, Value

__all__ = [
    "Batch",
    "CheckRules",
    "DirectoryUpdate",
    "Failure",
    "HubWorker",
    "Message",
    "Part",
    "Reply",
    "Seed",
    "Tick",
    "WorkerStatus",
]

log = logging.getLogger(__name__)
_HEADER = struct.Struct(">I")
RESTART_BACKOFF_S = 0.5  # the wait before starting a worker again after one died seeding
DEATHS_PER_MESSAGE = 3  # workers that may die on one message before it is given up


@dataclass(slots=True)
class Seed:
    """Everything the worker evaluates with; replaces what it had."""

    rules: list[StoredRule]
    directory: Directory
    states: dict[RuleKey, State]
    values: dict[int, Latest]
    seen: dict[int, int]
    started: int
    timezone: str


@dataclass(frozen=True, slots=True)
class DirectoryUpdate:
    """A newly loaded registry."""

    directory: Directory


class Sent(NamedTuple):
    """A reading rebuilt from a :class:`Part`'s columns (a tuple: no check, no copy)."""

    device_id: int
    key: str
    ts: int
    value: Value


@dataclass(frozen=True, slots=True)
class Part:
    """One committed batch's readings that rules read, as columns (lists of plain values
    pickle some twenty times faster than reading objects), and when its devices were heard."""

    device_ids: list[int]
    keys: list[str]
    ts: list[int]
    values: list[Value]
    seen: dict[int, int]

    @classmethod
    def of(cls, readings: list[Reading], seen: dict[int, int]) -> Part:
        """The columns of these readings."""
        return cls(
            [r.device_id for r in readings],
            [r.key for r in readings],
            [r.ts for r in readings],
            [r.value for r in readings],
            seen,
        )

    def readings(self) -> list[Sent]:
        """The readings again, in their order."""
        return list(map(Sent, self.device_ids, self.keys, self.ts, self.values))


@dataclass(frozen=True, slots=True)
class Batch:
    """Committed batches, evaluated one after the other (those queued while the worker was
    busy travel together)."""

    parts: list[Part]


@dataclass(frozen=True, slots=True)
class Tick:
    """The timer: check the rules that time alone can change, as of ``now``."""

    now: int


@dataclass(frozen=True, slots=True)
class CheckRules:
    """Rules just added or changed: check them on the latest values."""

    rule_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Failure:
    """The worker's answer when evaluating a message raised (the hub restarts it)."""

    error: str


Message = Seed | DirectoryUpdate | Batch | Tick | CheckRules
Reply = Outcome | Failure | None


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """How the worker is doing (``/healthz``)."""

    pid: int | None
    alive: bool
    restarts: int


class WorkerDied(Exception):
    """The worker process ended or broke the protocol."""


# -- the child ---------------------------------------------------------------------------
def _read(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))  # noqa: S301 - from our parent, over a pipe


def _write(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def answer(evaluator: Evaluator | None, message: Message) -> tuple[Evaluator | None, Reply]:
    """The worker's answer to one message, and the evaluator from then on."""
    if isinstance(message, Seed):
        evaluator = Evaluator(message.timezone)
        evaluator.set_directory(message.directory)
        evaluator.load_rules(compile_rules(message.rules, message.directory))
        evaluator.seed_states(message.states)
        evaluator.seed_values(message.values, message.seen)
        evaluator.started = message.started
        return evaluator, None
    if evaluator is None:
        return None, Failure("not seeded")
    if isinstance(message, DirectoryUpdate):
        evaluator.set_directory(message.directory)
        return evaluator, None
    if isinstance(message, Batch):
        outcome = Outcome()
        for part in message.parts:
            outcome.add(evaluator.evaluate(part.readings(), part.seen))
        return evaluator, outcome
    if isinstance(message, CheckRules):
        return evaluator, evaluator.check_rules(message.rule_ids)
    return evaluator, evaluator.check_timed(message.now)


def main() -> None:
    """Answer the hub's messages until it closes stdin."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not break a frame
    requests = sys.stdin.buffer
    evaluator: Evaluator | None = None
    while (message := _read(requests)) is not None:
        try:
            evaluator, reply = answer(evaluator, message)
        except Exception as err:
            log.exception("hub worker: evaluation failed")
            reply = Failure(repr(err))
        _write(replies, reply)


# -- the hub's side ----------------------------------------------------------------------
class HubWorker:
    """The worker process as the hub sees it: one message at a time, answered in order.

    ``seed`` builds a :class:`Seed` from the hub's own copy of states and values (called after
    every answer was applied); ``on_reply`` applies an answer, called before the next message
    can be sent; ``on_restart`` counts a restart.
    """

    def __init__(
        self,
        seed: Callable[[], Seed],
        on_reply: Callable[[Message, Reply], None],
        on_restart: Callable[[], None] = lambda: None,
    ) -> None:
        self._seed = seed
        self._on_reply = on_reply
        self._on_restart = on_restart
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._running = False
        self.restarts = 0

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a message is out: hold it to change what the worker was seeded with."""
        return self._lock

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._running

    def status(self) -> WorkerStatus:
        """Its process id, whether it runs, how often it was restarted."""
        proc = self._proc
        alive = proc is not None and proc.returncode is None
        return WorkerStatus(None if proc is None else proc.pid, alive, self.restarts)

    async def start(self) -> None:
        """Start the process and seed it; a worker that cannot start (three tries) is an
        error here, where the platform starts, rather than a hub that waits for ever."""
        async with self._lock:
            await self._spawn(attempts=3)
            self._running = True

    async def stop(self) -> None:
        """Close its input and wait for it to end (kill it if it does not)."""
        async with self._lock:
            self._running = False
            await self._end()

    async def reseed(self) -> None:
        """Send the hub's state again (after a rule change); the caller holds :attr:`lock`."""
        if self._running:
            await self._send(self._seed())

    async def call(self, message: Message) -> Reply:
        """Send one message and apply its answer, restarting the worker until it answers."""
        async with self._lock:
            return await self._send(message)

    async def _send(self, message: Message) -> Reply:
        failures = 0
        while True:
            if self._proc is None or self._proc.returncode is not None:
                await self._restart(failures)
            try:
                reply = await self._exchange(message)
            except WorkerDied as err:
                failures += 1
                log.warning("hub worker %s died (%s): restarting", self._pid(), err)
                await self._end()
                if failures >= DEATHS_PER_MESSAGE:  # it is this message that kills them
                    raise RuntimeError(f"hub worker died {failures} times on one message") from err
                continue
            if isinstance(reply, Failure):
                failures += 1
                log.warning("hub worker failed (%s): restarting it", reply.error)
                await self._end()  # its state may be half changed: seed a new one
                if failures > 1:  # it fails again on the same message: skip the message
                    raise RuntimeError(f"hub worker: {reply.error}")
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
                "smartpole.hub.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                reply = await self._exchange(self._seed())
            except WorkerDied as err:
                reply = Failure(str(err))
            if reply is None:
                return
            log.warning("hub worker could not be seeded (%s): starting another", reply)
            await self._end()
            if attempts is not None and tried >= attempts:
                raise RuntimeError(f"the hub worker could not start: {reply}")
            await asyncio.sleep(RESTART_BACKOFF_S)

    async def _exchange(self, message: Message) -> Reply:
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
            raise WorkerDied(repr(err)) from err
        reply: Reply = pickle.loads(body)  # noqa: S301 - from our own child, over a pipe
        return reply

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


if __name__ == "__main__":
    # The module again under its own name: the messages' classes are its, not ``__main__``'s.
    from smartpole.hub import worker

    worker.main()
