"""What a rule does when it fires or stops: alarms, commands, lamps held, webhooks, work orders.

The engine hands every transition to :class:`Actor`, whose own task does the slow parts (database
writes, commands, HTTP) so that evaluation, and the ingest writer before it, never wait for them.
Transitions of one rule and device are acted on in order (raise before its clear).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from smartpole.errors import SmartpoleError
from smartpole.hub.alarms.store import Alarms
from smartpole.hub.directory import DeviceInfo, Directory
from smartpole.hub.rules.model import (
    AlarmAction,
    CommandAction,
    LightAction,
    Rule,
    WebhookAction,
    WorkOrderAction,
)
from smartpole.hub.webhooks.store import Webhooks
from smartpole.model.alarms import Alarm
from smartpole.model.clock import now_ms
from smartpole.model.commands import Command
from smartpole.model.types import Value

__all__ = ["Actor", "Commander", "LampHolder", "Transition", "WorkOrderOpener"]

log = logging.getLogger(__name__)


class WorkOrderOpener(Protocol):
    """Opens a work order for an alarm (``smartpole.hub.workorders.store.WorkOrders``)."""

    async def open_for_alarm(self, alarm: Alarm, team: str | None, note: str | None) -> int:
        """Open a work order for the alarm; return its id."""
        ...


class Commander(Protocol):
    """Sends a command to a device (``smartpole.control.Control``)."""

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
        """Record and send a command."""
        ...


class LampHolder(Protocol):
    """Holds lamps at a level until a time in their lighting plans
    (``smartpole.lighting.service.LightingService``)."""

    async def hold(
        self, tenant_id: int, lamps: list[int], level: float, until_ms: int, reason: str
    ) -> None:
        """Override the lamps' programs with ``level`` until ``until_ms``."""
        ...


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule started (``raised``) or stopped holding for a device at ``ts``."""

    rule: Rule
    device: DeviceInfo
    raised: bool
    ts: int
    values: dict[str, Value] = field(default_factory=dict)
    # the rule still holds for another device of the pole (and owner): a pole's alarm stays
    pole_holds: bool = False


class Actor:
    """Carries out transitions on its own task; commands and webhooks run beside it."""

    def __init__(
        self,
        alarms: Alarms,
        commander: Commander | None,
        webhooks: Webhooks | None,
        work_orders: WorkOrderOpener | None = None,
        max_parallel: int = 32,
        lamps: LampHolder | None = None,
    ) -> None:
        self.alarms = alarms
        self.commander = commander
        self.webhooks = webhooks
        self.work_orders = work_orders
        self.lamps = lamps
        self.directory = Directory()
        self.done = 0
        self._queue: asyncio.Queue[Transition] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._side: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(max_parallel)

    def put(self, t: Transition) -> None:
        """Queue a transition (never blocks)."""
        self._queue.put_nowait(t)

    async def start(self) -> None:
        """Start the actor task."""
        self._task = asyncio.create_task(self._run(), name="hub-actions")

    async def drain(self) -> None:
        """Wait until every queued transition and its side tasks are done."""
        await self._queue.join()
        while self._side:
            await asyncio.gather(*list(self._side))

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self.drain()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while True:
            t = await self._queue.get()
            try:
                await self.act(t)
            except Exception:
                log.exception("rule %r failed to act for device %s", t.rule.name, t.device.id)
            finally:
                self.done += 1
                self._queue.task_done()

    async def act(self, t: Transition) -> None:
        """Do the rule's actions for one transition."""
        alarm: Alarm | None = None
        new_alarm = False
        for action in t.rule.actions:
            if isinstance(action, AlarmAction):
                found = await self._alarm(t, action)
                if found is not None:
                    alarm = found
                    new_alarm = t.raised and found.count == 1
        for action in t.rule.actions:
            if isinstance(action, CommandAction) and (action.on == "raise") == t.raised:
                for device_id in self.targets(t, action.target, action.radius_m, action.kind):
                    self._spawn(self._command(t.rule, device_id, action))
            elif isinstance(action, LightAction) and t.raised:
                self._light(t, action)
            elif isinstance(action, WebhookAction) and self.webhooks is not None:
                if action.on == "both" or (action.on == "raise") == t.raised:
                    self._spawn(self._webhook(t, action, alarm))
            elif isinstance(action, WorkOrderAction) and new_alarm and alarm is not None:
                if self.work_orders is None:
                    log.warning("rule %r wants a work order; none are wired", t.rule.name)
                else:
                    await self.work_orders.open_for_alarm(alarm, action.team, action.note)

    def _originator(self, t: Transition, action: AlarmAction) -> tuple[str, int]:
        if action.originator == "pole" and t.device.pole_id is not None:
            return "pole", t.device.pole_id
        return "device", t.device.id

    async def _alarm(self, t: Transition, action: AlarmAction) -> Alarm | None:
        otype, oid = self._originator(t, action)
        if t.raised:
            details = {
                "rule": t.rule.name,
                "device_id": t.device.id,
                "values": t.values,
                **action.details,
            }
            return await self.alarms.raise_alarm(
                tenant_id=t.device.owner_id,
                originator_type=otype,
                originator_id=oid,
                type=action.type,
                severity=action.severity,
                details=details,
                ts=t.ts,
                pole_id=t.device.pole_id,
                propagate=action.propagate,
                latch=action.latch,
            )
        if not action.clear or (otype == "pole" and t.pole_holds):
            return None
        return await self.alarms.clear(
            originator_type=otype, originator_id=oid, type=action.type, ts=t.ts
        )

    def targets(self, t: Transition, target: str, radius_m: float, kind: str | None) -> list[int]:
        """The devices an action reaches: the originator, its pole's or those within
        ``radius_m``, of ``kind``, and only the rule tenant's own unless it is the city's rule."""
        d = self.directory
        if target == "self":
            found = [t.device.id]
        elif target == "pole":
            found = list(d.on_pole.get(t.device.pole_id, ())) if t.device.pole_id else []
        else:
            pole = d.pole_of(t.device)
            found = []
            if pole is not None:
                for pid in d.poles_within(pole.lat, pole.lon, radius_m):
                    found.extend(d.on_pole.get(pid, ()))
        out = []
        for device_id in found:
            info = d.devices.get(device_id)
            if info is None or (kind is not None and info.kind != kind):
                continue
            if not t.rule.city_wide and info.owner_id != t.rule.tenant_id:
                continue
            out.append(device_id)
        return sorted(out)

    def _light(self, t: Transition, action: LightAction) -> None:
        lamps = self.targets(t, action.target, action.radius_m, "lamp")
        if not lamps:
            return
        # At once, persistent for the hold: a lamp offline at the press gets it when back.
        dim = CommandAction("setDim", {"level": action.level}, "lamp", expires_ms=action.for_ms)
        for device_id in lamps:
            self._spawn(self._command(t.rule, device_id, dim))
        if self.lamps is not None:
            # counted from now, as the commands: the hub may learn of the event late
            until = now_ms() + action.for_ms
            self._spawn(self._hold(t, lamps, action.level, until))

    async def _hold(self, t: Transition, lamps: list[int], level: float, until: int) -> None:
        assert self.lamps is not None
        reason = f"rule {t.rule.name} (device {t.device.id})"
        try:
            await self.lamps.hold(t.rule.tenant_id, lamps, level, until, reason)
        except Exception:
            log.exception("rule %r: holding lamps %s failed", t.rule.name, lamps)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def _command(self, rule: Rule, device_id: int, action: CommandAction) -> None:
        if self.commander is None:
            return
        async with self._limit:
            try:
                await self.commander.call(
                    device_id,
                    action.method,
                    action.params,
                    oneway=True,
                    persistent=action.persistent,
                    # counted from now: the hub may learn of the event late (a gateway's backlog)
                    expiration_ms=action.expires_ms if action.persistent else None,
                )
            except SmartpoleError as err:
                # A lamp that fails (or, non-persistent, is offline) must not stop the others;
                # the command row records it.
                log.info("rule %r: command to device %s: %s", rule.name, device_id, err.detail)
            except Exception:
                log.exception("rule %r: command to device %s failed", rule.name, device_id)

    async def _webhook(self, t: Transition, action: WebhookAction, alarm: Alarm | None) -> None:
        assert self.webhooks is not None
        event = "rule.raised" if t.raised else "rule.cleared"
        payload = {
            "event": event,
            "rule": t.rule.name,
            "ts": t.ts,
            "device": {
                "id": t.device.id,
                "kind": t.device.kind,
                "pole_id": t.device.pole_id,
            },
            "values": t.values,
            "alarm": None if alarm is None else alarm.to_dict(),
        }
        async with self._limit:
            await asyncio.to_thread(
                self.webhooks.enqueue, t.rule.tenant_id, action.name, event, payload
            )
