"""Commands to devices (ThingsBoard "server-side RPC") and their lifecycle.

    queued ──► sent ──► delivered ──► succeeded | failed
      └─────────┴──────────┴────────► expired

A command is stored before anything goes on the wire, so every call leaves a record. A two-way
command ends with the device's reply (``failed`` when the reply is ``{"error": ...}``); a one-way
command ends ``succeeded`` once the transport reports it delivered. ``expires`` is the moment a
command gives up in its current state: while queued, its expiration (persistent commands wait
for the device for up to a day by default); once sent, ``sent + timeout``.

Non-persistent commands go only to a device that is connected now. Persistent ones are kept
and sent when the device connects; one that was sent but never delivered (the session dropped)
is sent again with the same request id on the next connection, counted in ``retries``.

Replies wake the waiting ``call`` through an in-process future, so the reply must reach the
node that sent the command (the node that holds the device's session).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson
from sqlalchemy import Engine, Row, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.errors import DeviceOffline, InvalidInput, NotFound, Timeout
from smartpole.model.clock import now_ms
from smartpole.model.commands import Command, CommandStatus
from smartpole.store.schema import commands, devices

__all__ = ["CommandChannel", "CommandListener", "Control"]

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
MAX_METHOD = 128
MAX_ERROR = 500
MAX_REQUEST_ID = 2**31 - 1  # the column is a 32-bit integer; a larger id is no command of ours
INSERT_ATTEMPTS = 5  # concurrent calls to one device may pick the same next request id


QUEUED, SENT, DELIVERED = CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.DELIVERED
SUCCEEDED, FAILED, EXPIRED = CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.EXPIRED
IN_FLIGHT = (SENT, DELIVERED)
ACTIVE = (QUEUED, SENT, DELIVERED)


CommandListener = Callable[[Command], None]
"""Told each new state of a command (queued, sent, delivered, succeeded, failed, expired), on
the event loop, after it is stored; it must not block (the live socket queues it)."""


class CommandChannel(Protocol):
    """The way out to devices: the transport that holds their sessions."""

    async def send(self, device_id: int, request_id: int, method: str, params: Any) -> bool:
        """Write a command to the device's live session; False when it has none."""
        ...

    def is_connected(self, device_id: int) -> bool:
        """Whether the device has a live session here."""
        ...


def _dumps(value: Any, what: str) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError as err:
        raise InvalidInput(f"{what} must be JSON: {err}") from err


def _command(row: Row[Any]) -> Command:
    """A command row as a value, with params and response decoded."""
    m = row._mapping
    response = m["response"]
    return Command(
        id=m["id"],
        device_id=m["device_id"],
        request_id=m["request_id"],
        method=m["method"],
        params=orjson.loads(m["params"]),
        oneway=m["oneway"],
        persistent=m["persistent"],
        status=CommandStatus(m["status"]),
        timeout=m["timeout"],
        created=m["created"],
        expires=m["expires"],
        sent=m["sent"],
        delivered=m["delivered"],
        completed=m["completed"],
        response=None if response is None else orjson.loads(response),
        error=m["error"],
        retries=m["retries"],
    )


def _reply_error(response: Any) -> str | None:
    """The error a reply reports (``{"error": ...}``), as text; None for a success."""
    if not isinstance(response, dict) or "error" not in response:
        return None
    error = response["error"]
    text = error if isinstance(error, str) else orjson.dumps(error, default=str).decode()
    return text[:MAX_ERROR]


class Control:
    """Records commands, sends them over the channel and follows them to their end.

    The channel is the platform's transports as one (``app.Channels``, which they join as they
    start); without one (a node that only records commands) every device counts as offline.
    ``listeners`` are told every change of a command's status.
    """

    def __init__(
        self,
        engine: Engine,
        channel: CommandChannel | None = None,
        listeners: Iterable[CommandListener] = (),
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.listeners = tuple(listeners)
        self._waiting: dict[tuple[int, int], asyncio.Future[None]] = {}
        # Devices that may have persistent commands waiting (queued, or sent and undelivered),
        # so that a connect storm of thousands of devices costs no query per device. None until
        # the first ``expire`` reads it; persistent calls add to it at once.
        self._pending: set[int] | None = None
        self._added: set[int] = set()  # persistent calls since the last read of the table

    def connected(self, device_id: int) -> bool:
        """Whether the channel has a live session for the device."""
        return self.channel is not None and self.channel.is_connected(device_id)

    # -- calls ---------------------------------------------------------------------------
    async def call(
        self,
        device_id: int,
        method: str,
        params: Any,
        *,
        oneway: bool = False,
        timeout_ms: int = 10_000,
        persistent: bool = False,
        expiration_ms: int | None = None,
    ) -> Command:
        """Record a command and send it if the device is connected.

        A two-way, non-persistent command waits up to ``timeout_ms`` for the reply and returns
        the finished command (``succeeded``, or ``failed`` when the device answered with an
        error), or raises ``Timeout`` (the command is then ``expired``). One-way and persistent
        commands return at once: sent, or (persistent, device offline) queued until it connects
        or ``expiration_ms`` (default a day) passes. A non-persistent command to an offline
        device is recorded ``failed`` and raises ``DeviceOffline``.
        """
        if not 1 <= len(method) <= MAX_METHOD:
            raise InvalidInput(f"method must be 1 to {MAX_METHOD} characters", method=method)
        if timeout_ms <= 0:
            raise InvalidInput("timeout must be positive", timeout=timeout_ms)
        if expiration_ms is not None and (not persistent or expiration_ms <= 0):
            raise InvalidInput("expiration is a positive time, for persistent commands only")
        text = _dumps(params, "params")
        connected = self.connected(device_id)
        now = now_ms()
        # Until it is sent a persistent command waits for the device; a non-persistent one is
        # sent at once, and then every command waits its timeout.
        wait_ms = (expiration_ms or DAY_MS) if persistent else timeout_ms
        values: dict[str, Any] = {
            "device_id": device_id,
            "method": method,
            "params": text,
            "oneway": oneway,
            "persistent": persistent,
            "timeout": timeout_ms,
            "created": now,
            "status": SENT if connected else QUEUED,
            "sent": now if connected else None,
            "expires": now + wait_ms,
        }
        if not connected and not persistent:
            values.update(status=FAILED, completed=now, error="device offline")
        command = await asyncio.to_thread(self._insert, values)
        self._tell(command)
        if persistent:
            self._note_pending(device_id)
        if not connected:
            if not persistent:
                raise self._offline(command)
            return command
        wait = not oneway and not persistent
        key = (device_id, command.request_id)
        if wait:
            self._waiting[key] = asyncio.get_running_loop().create_future()
        try:
            if not await self._transmit(command):
                if persistent:
                    return await asyncio.to_thread(self.get, command.id)
                raise self._offline(command)
            if wait:
                return await self._reply(command, self._waiting[key])
            return await asyncio.to_thread(self.get, command.id)
        finally:
            if wait:
                del self._waiting[key]

    @staticmethod
    def _offline(command: Command) -> DeviceOffline:
        return DeviceOffline(
            f"device {command.device_id} is offline; send a persistent command to queue it",
            command_id=command.id,
            device_id=command.device_id,
        )

    async def _reply(self, command: Command, reply: asyncio.Future[None]) -> Command:
        """Wait for the reply to a sent two-way command; expire it when none comes in time."""
        try:
            await asyncio.wait_for(reply, command.timeout / 1000)
        except TimeoutError:
            self._tell(await asyncio.to_thread(self._give_up, command.id))
        out = await asyncio.to_thread(self.get, command.id)
        if out.status == EXPIRED:
            raise Timeout(
                f"device {command.device_id} did not answer {command.method!r} "
                f"within {command.timeout} ms",
                command_id=command.id,
                device_id=command.device_id,
                timeout=command.timeout,
            )
        return out

    async def _transmit(self, command: Command) -> bool:
        """Write a command already marked ``sent`` to the channel; undo the mark if it fails."""
        ok = False
        if self.channel is not None:
            try:
                ok = await self.channel.send(
                    command.device_id, command.request_id, command.method, command.params
                )
            except Exception:
                log.exception(
                    "sending command %d to device %d failed", command.id, command.device_id
                )
        if ok and command.persistent:
            await asyncio.to_thread(self._sent, command.id)
        elif not ok:
            self._tell(await asyncio.to_thread(self._unsent, command))
        return ok

    # -- events from the transport ------------------------------------------------------
    async def on_reply(self, device_id: int, request_id: int, response: Any) -> None:
        """The device answered a two-way command: it succeeded, or failed on ``{"error": ...}``.

        A reply to no command in flight (unknown, one-way, finished or expired) is ignored.
        """
        done = None
        if 0 <= request_id <= MAX_REQUEST_ID:
            done = await asyncio.to_thread(self._complete, device_id, request_id, response)
        if done is None:
            log.debug("ignored a reply to no command in flight: %d/%d", device_id, request_id)
            return
        self._tell(done)
        waiter = self._waiting.get((device_id, request_id))
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def on_delivered(self, device_id: int, request_id: int) -> None:
        """The transport delivered a sent command (written, or PUBACK for QoS 1).

        A two-way command becomes ``delivered``; a one-way one ``succeeded``.
        """
        done = None
        if 0 <= request_id <= MAX_REQUEST_ID:
            done = await asyncio.to_thread(self._delivered, device_id, request_id)
        if done is None:
            log.debug("ignored a delivery of no sent command: %d/%d", device_id, request_id)
        self._tell(done)

    async def on_connect(self, device_id: int, *, resend: bool = True) -> int:
        """Send the device's waiting persistent commands in creation order; return how many.

        Waiting are the queued ones and (``resend``: a new session) those sent on an earlier
        session but never delivered; expired ones are left to ``expire``.
        """
        if self._pending is not None and device_id not in self._pending:
            return 0
        count = 0
        for command in await asyncio.to_thread(self._due, device_id, now_ms(), resend):
            claimed = await asyncio.to_thread(self._claim, command)
            if claimed is None:
                continue  # another node or task sent it meanwhile
            self._tell(claimed)
            if not await self._transmit(command):
                break  # the session is gone again
            count += 1
        return count

    async def expire(self, now: int | None = None) -> int:
        """Mark unfinished commands past their ``expires`` as expired; return how many.

        Also re-reads which devices have persistent commands waiting, and sends the queued ones
        of devices connected here (queued by another node, or while they were connecting).
        """
        gone = await asyncio.to_thread(self._expire, now_ms() if now is None else now)
        for command in gone:
            self._tell(command)
        expired = len(gone)
        self._added = set()
        waiting, queued = await asyncio.to_thread(self._waiting_devices, now_ms())
        self._pending = waiting | self._added
        for device_id in queued:
            if self.connected(device_id):
                # queued ones only: the device's session is not new, and one of its commands
                # may have been sent a moment ago by on_connect (not delivered yet)
                await self.on_connect(device_id, resend=False)
        return expired

    def _tell(self, command: Command | None) -> None:
        """Tell the listeners a command's new state (None: nothing changed)."""
        if command is None:
            return
        for listener in self.listeners:
            try:
                listener(command)
            except Exception:
                log.exception("command listener %r failed", listener)

    def _note_pending(self, device_id: int) -> None:
        self._added.add(device_id)
        if self._pending is not None:
            self._pending.add(device_id)

    # -- reads -----------------------------------------------------------------------------
    def get(self, command_id: int) -> Command:
        """One command by id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(commands).where(commands.c.id == command_id)).first()
        if row is None:
            raise NotFound(f"command {command_id} not found", command_id=command_id)
        return _command(row)

    def of_device(
        self, device_id: int, status: CommandStatus | None = None, limit: int = 100
    ) -> list[Command]:
        """A device's commands, newest first, optionally of one status."""
        q = select(commands).where(commands.c.device_id == device_id)
        if status is not None:
            q = q.where(commands.c.status == status)
        q = q.order_by(commands.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_command(r) for r in conn.execute(q)]

    # -- database work (in worker threads) -------------------------------------------------
    def _insert(self, values: dict[str, Any]) -> Command:
        """Store a command under the device's next request id."""
        device_id = values["device_id"]
        next_request = (
            select(func.coalesce(func.max(commands.c.request_id), 0) + 1)
            .where(commands.c.device_id == device_id)
            .scalar_subquery()
        )
        stmt = insert(commands).values(**values, request_id=next_request).returning(commands.c.id)
        lock_device = select(devices.c.id).where(devices.c.id == device_id).with_for_update()
        for attempt in range(1, INSERT_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    if self.engine.dialect.name == "postgresql":
                        # calls to one device take turns for its next request id (SQLite
                        # writes one at a time already)
                        conn.execute(lock_device)
                    command_id = conn.execute(stmt).scalar_one()
                return self.get(command_id)
            except IntegrityError as err:
                with self.engine.connect() as conn:
                    exists = conn.execute(
                        select(devices.c.id).where(devices.c.id == device_id)
                    ).first()
                if exists is None:
                    raise NotFound(f"device {device_id} not found", device_id=device_id) from err
                if attempt == INSERT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _sent(self, command_id: int) -> None:
        """A persistent command went out: from now on it waits ``timeout``, not its expiry."""
        with self.engine.begin() as conn:
            conn.execute(
                update(commands)
                .where(commands.c.id == command_id, commands.c.status.in_(IN_FLIGHT))
                .values(expires=commands.c.sent + commands.c.timeout)
            )

    def _unsent(self, command: Command) -> Command | None:
        """The channel did not take the command: persistent ones wait again, others fail."""
        if command.persistent:
            values: dict[str, Any] = {"status": QUEUED, "sent": None}
        else:
            values = {"status": FAILED, "completed": now_ms(), "error": "device offline"}
        with self.engine.begin() as conn:
            row = conn.execute(
                update(commands)
                .where(commands.c.id == command.id, commands.c.status == SENT)
                .values(**values)
                .returning(*commands.c)
            ).first()
        return None if row is None else _command(row)

    def _give_up(self, command_id: int) -> Command | None:
        with self.engine.begin() as conn:
            row = conn.execute(
                update(commands)
                .where(commands.c.id == command_id, commands.c.status.in_(IN_FLIGHT))
                .values(status=EXPIRED, completed=now_ms(), error="no reply within the timeout")
                .returning(*commands.c)
            ).first()
        return None if row is None else _command(row)

    def _complete(self, device_id: int, request_id: int, response: Any) -> Command | None:
        error = _reply_error(response)
        with self.engine.begin() as conn:
            row = conn.execute(
                update(commands)
                .where(
                    commands.c.device_id == device_id,
                    commands.c.request_id == request_id,
                    commands.c.status.in_(IN_FLIGHT),
                    commands.c.oneway.is_(False),
                )
                .values(
                    status=SUCCEEDED if error is None else FAILED,
                    completed=now_ms(),
                    response=orjson.dumps(response, default=str).decode(),
                    error=error,
                )
                .returning(*commands.c)
            ).first()
        return None if row is None else _command(row)

    def _delivered(self, device_id: int, request_id: int) -> Command | None:
        now = now_ms()
        with self.engine.begin() as conn:
            row = conn.execute(
                update(commands)
                .where(
                    commands.c.device_id == device_id,
                    commands.c.request_id == request_id,
                    commands.c.status == SENT,
                )
                .values(
                    delivered=now,
                    status=case((commands.c.oneway, SUCCEEDED.value), else_=DELIVERED.value),
                    completed=case((commands.c.oneway, now), else_=None),
                )
                .returning(*commands.c)
            ).first()
        return None if row is None else _command(row)

    def _due(self, device_id: int, now: int, resend: bool = True) -> list[Command]:
        """Persistent commands to send: queued, or (``resend``, a new session) sent before it,
        unexpired."""
        waiting = commands.c.status == QUEUED
        if resend:
            waiting = waiting | ((commands.c.status == SENT) & (commands.c.sent < now))
        q = (
            select(commands)
            .where(
                commands.c.device_id == device_id,
                commands.c.persistent.is_(True),
                commands.c.expires > now,
                waiting,
            )
            .order_by(commands.c.created, commands.c.id)
        )
        with self.engine.connect() as conn:
            return [_command(r) for r in conn.execute(q)]

    def _waiting_devices(self, now: int) -> tuple[set[int], set[int]]:
        """Devices with unexpired persistent commands queued or sent; and those with queued."""
        q = (
            select(commands.c.device_id, commands.c.status)
            .where(
                commands.c.persistent.is_(True),
                commands.c.status.in_((QUEUED, SENT)),
                commands.c.expires > now,
            )
            .distinct()
        )
        waiting: set[int] = set()
        queued: set[int] = set()
        with self.engine.connect() as conn:
            for device_id, status in conn.execute(q):
                waiting.add(device_id)
                if status == QUEUED:
                    queued.add(device_id)
        return waiting, queued

    def _claim(self, command: Command) -> Command | None:
        """Mark a due command sent, unless someone else changed it since it was read."""
        again = command.status == SENT
        q = update(commands).where(commands.c.id == command.id, commands.c.status == command.status)
        if again:
            q = q.where(commands.c.sent == command.sent)
        with self.engine.begin() as conn:
            row = conn.execute(
                q.values(
                    status=SENT, sent=now_ms(), retries=commands.c.retries + int(again)
                ).returning(*commands.c)
            ).first()
        return None if row is None else _command(row)

    def _expire(self, now: int) -> list[Command]:
        error = case(
            (commands.c.status == QUEUED, "not sent before it expired"),
            (commands.c.oneway, "not delivered within the timeout"),
            else_="no reply within the timeout",
        )
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(commands)
                .where(commands.c.status.in_(ACTIVE), commands.c.expires <= now)
                .values(status=EXPIRED, completed=now, error=error)
                .returning(*commands.c)
            ).all()
        return [_command(r) for r in rows]
