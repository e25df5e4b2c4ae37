"""The store's writer in a process of its own (``store_writer_process``, ``serve --workers 2``).

Committing a batch (the readings' insert, their journal, the latest values and rollups it
derives) is half of what the server's process does at 10,000 poles, and it holds that process's
interpreter lock while the event loop waits for it. Here a child process (:func:`main`) owns
the writing: the platform's ``SeriesStore`` sends it each batch's rows and waits for the
commit, so a PUBACK still follows the commit, and it reads the database as before (a read asks
the writer to flush first).

The child is a ``SeriesStore`` of the same node. When it dies
(killed, out of memory) the call that saw it starts another, which first settles the node's
marks from their journals, exactly as a restarted server does (``SeriesStore.recover``), and
sends the batch again: a commit that landed before the death finds its readings duplicates and
adds nothing twice. A child that dies twice on one call is a :class:`StoreUnavailable` to the
caller, which the pipeline retries with its backoff; four deaths in a row (two calls) refuse
the batch (an error its devices are told), so that a batch that kills the writer cannot hold
all ingest for ever.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from smartpole.child import ChildStatus, Failure, read_frame, serve, write_frame
from smartpole.errors import StoreUnavailable
from smartpole.model.writes import WriteBatch, WriteResult
from smartpole.store.database import Database
from smartpole.store.engines import engine_series

__all__ = ["WriterProcess", "WriterSeed"]

log = logging.getLogger(__name__)
ATTEMPTS = 2  # processes one call may start (the second after the first died)
DEATHS_PER_BATCH = 4  # deaths in a row (two calls) after which the call is refused for good
STOP_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class WriterSeed:
    """What a writer process opens: the database and its node's series store."""

    url: str
    node: str
    flush_ms: int = 0
    retention_days: int = 0
    sqlite_synchronous: str = "FULL"
    sqlite_busy_timeout_ms: int = 30_000


@dataclass(frozen=True, slots=True)
class _Refused:
    """The child's answer when the store refused (an outage, a bug): raised in the parent."""

    error: str
    detail: str
    fields: dict[str, Any] = field(default_factory=dict)


class WriterProcess:
    """The parent's side: one call at a time, from any thread, each waiting for its answer."""

    def __init__(self, seed: WriterSeed) -> None:
        self.seed = seed
        self._spawned = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._deaths = 0  # in a row, since the last answer
        self._settled_at_start = 0  # marks a new process settled before its first call
        self._closed = False

    def write(self, rows: list[tuple[Any, ...]], batch: WriteBatch) -> WriteResult:
        """Commit ``rows`` (``values.reading_rows``) with the batch's quarantine and last-seen."""
        result: WriteResult = self._call(("write", rows, batch))
        return result

    def flush(self) -> None:
        """Write the gathered latest values and rollups now."""
        self._call(("flush",))

    def recover(self) -> int:
        """Settle the node's unflushed marks; how many were settled, counting those a new
        process settled as it started."""
        settled: int = self._call(("recover",))
        settled, self._settled_at_start = settled + self._settled_at_start, 0
        return settled

    def status(self) -> ChildStatus:
        """Its process id, whether it runs, how often it was restarted."""
        proc = self._proc
        alive = proc is not None and proc.poll() is None
        return ChildStatus(None if proc is None else proc.pid, alive, max(0, self._spawned - 1))

    def close(self, *, flush: bool = True) -> None:
        """End the process (after writing what it gathered, unless ``flush`` is False)."""
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
            if proc is None:
                return
            try:
                if proc.poll() is None and flush:
                    reply = self._exchange(proc, ("close",))
                    if reply is None:
                        raise StoreUnavailable("it ended", reason="writer process")
                    self._answer(reply)
            except (StoreUnavailable, RuntimeError) as err:
                # the readings are committed; the next start settles their derived state
                log.warning("the store's writer could not flush as it stopped: %s", err)
            finally:
                self._end(proc, kill=not flush)

    def _call(self, message: tuple[Any, ...]) -> Any:
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the store's writer has stopped", reason="stopped")
            for attempt in range(1, ATTEMPTS + 1):
                proc = self._proc
                if proc is not None and proc.poll() is not None:  # it died between calls
                    log.warning(
                        "the store's writer process %d ended (%s); starting another",
                        proc.pid,
                        proc.returncode,
                    )
                    self._end(proc)
                    self._proc = proc = None
                if proc is None:
                    proc = self._spawn()
                reply = self._exchange(proc, message)
                if reply is not None:
                    self._deaths = 0
                    return self._answer(reply)
                self._end(proc)
                self._proc = None
                self._deaths += 1
                if self._deaths >= DEATHS_PER_BATCH:
                    # it is this message that kills them (a batch too large for its memory):
                    # refuse it rather than stop all ingest retrying it
                    self._deaths = 0
                    raise RuntimeError(
                        f"the store's writer process died {DEATHS_PER_BATCH} times on one call"
                    )
                log.warning(
                    "the store's writer process %d ended (%s); %s",
                    proc.pid,
                    proc.returncode,
                    "starting another" if attempt < ATTEMPTS else "giving up this call",
                )
            raise StoreUnavailable(
                "the store's writer process ended twice on one call", reason="writer process"
            )

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._spawned += 1
        proc = subprocess.Popen(
            [sys.executable, "-c", "from smartpole.store import writer; writer.main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        reply = self._exchange(proc, self.seed)
        if reply is None or not isinstance(reply, tuple):
            self._end(proc)
            if reply is None:
                raise StoreUnavailable(
                    "the store's writer process ended as it started", reason="writer process"
                )
            self._answer(reply)
        self._settled_at_start += self._answer(reply)
        self._proc = proc
        return proc

    @staticmethod
    def _exchange(proc: subprocess.Popen[bytes], message: Any) -> Any:
        """Send one message and read the answer (None: the process died)."""
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            write_frame(proc.stdin, message)
            return read_frame(proc.stdout)
        except (BrokenPipeError, ConnectionError, EOFError):
            return None

    @staticmethod
    def _answer(reply: Any) -> Any:
        if isinstance(reply, _Refused):
            if reply.error == "StoreUnavailable":
                raise StoreUnavailable(reply.detail, **reply.fields)
            raise RuntimeError(f"the store's writer failed: {reply.detail}")
        if isinstance(reply, Failure):
            raise RuntimeError(f"the store's writer failed: {reply.error}")
        return reply[1]  # ("done", value)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes], *, kill: bool = False) -> None:
        if proc.stdin is not None and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if kill:
            proc.kill()
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- the child's side -------------------------------------------------------------------
def answer(series: Any, message: Any) -> tuple[Any, Any]:
    """``serve``'s handler: the seed opens the store, then each message is one call; every
    answer is ``("done", value)`` or :class:`_Refused`."""
    try:
        if isinstance(message, WriterSeed):
            db = Database(
                message.url,
                sqlite_synchronous=message.sqlite_synchronous,
                sqlite_busy_timeout_ms=message.sqlite_busy_timeout_ms,
            )
            series = engine_series(
                db, message.retention_days, flush_ms=message.flush_ms, node=message.node
            )
            return series, ("done", series.recover())  # what the process before left
        kind = message[0]
        if kind == "write":
            return series, ("done", series.write_rows(message[1], message[2]))
        if kind == "flush":
            series.flush()
            return series, ("done", None)
        if kind == "recover":
            return series, ("done", series.recover())
        if kind == "close":
            series.close()
            return None, ("done", None)
        raise ValueError(f"unknown message {kind!r}")
    except StoreUnavailable as err:
        return series, _Refused("StoreUnavailable", err.detail, err.fields)
    except Exception as err:
        log.exception("the store's writer failed on %s", type(message).__name__)
        return series, _Refused(type(err).__name__, repr(err))


def main() -> None:
    """The writer process: answer the parent until it closes the pipe. It ends with its
    parent, which closes the pipe as it stops: a Ctrl-C or a SIGTERM to the whole process group
    must not end it before the parent has drained the pipeline into it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve("the store's writer", answer)
