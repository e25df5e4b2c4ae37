"""Alarms: raised and cleared by rules, acknowledged, assigned and commented on by people.

Lifecycle (ThingsBoard's): ``active_unack`` → ``active_ack`` → ``cleared_ack``, or
``active_unack`` → ``cleared_unack`` → ``cleared_ack``. There is at most one active alarm per
(originator, type): the database enforces it with a partial unique index, and raising is one
``INSERT ... ON CONFLICT DO UPDATE`` so that concurrent raisers (threads, processes) bump the
same row's count instead of racing.

An alarm is seen by every tenant it is propagated to: always the owner of its originator, plus
whoever a rule names (the police for an SOS). The city operator sees every alarm.

A *latching* alarm (an SOS) stays active until someone acknowledges it: the rule's clear is
remembered (``released_ts``) and takes effect with the acknowledgement. An alarm may be grouped
under a *root* alarm (``root_id``: the devices' offline alarms under their dark pole's), so that
one problem is one alarm in a listing of roots, with its children counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy
from sqlalchemy import and_, delete, func, insert, or_, select, text, update

from smartpole.errors import InvalidInput, NotFound
from smartpole.hub.alarms.tables import ACTIVE_WHERE, alarm_comments, alarm_tenants, alarms
from smartpole.model.alarms import Alarm, AlarmChange, AlarmComment, ChangeKind
from smartpole.model.clock import now_ms
from smartpole.model.lifecycle import AlarmStatus, Severity
from smartpole.registry.access import Principal
from smartpole.store.database import upsert

__all__ = ["ACTIVE", "AlarmFilter", "Alarms", "ChangeListener", "alarm_of"]

log = logging.getLogger(__name__)
ORIGINATOR_TYPES = ("device", "pole", "work_order")
MAX_TYPE = 128


ACTIVE = (AlarmStatus.ACTIVE_UNACK.value, AlarmStatus.ACTIVE_ACK.value)


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """Which alarms a listing wants; ``None`` means any."""

    status: Sequence[AlarmStatus] | None = None
    severity: Sequence[Severity] | None = None
    type: str | None = None
    originator_type: str | None = None
    originator_id: int | None = None
    pole_id: int | None = None
    assignee: str | None = None
    since: int | None = None
    until: int | None = None
    roots: bool = False  # only alarms grouped under no other
    root_id: int | None = None  # only the alarms grouped under this one


ChangeListener = Callable[[AlarmChange], Awaitable[None] | None]


def alarm_of(row: Any) -> Alarm:
    """An alarm from its table row (with ``children`` when the query counted them)."""
    m = row._mapping
    return Alarm(
        id=m["id"],
        tenant_id=m["tenant_id"],
        originator_type=m["originator_type"],
        originator_id=m["originator_id"],
        type=m["type"],
        severity=Severity(m["severity"]),
        status=AlarmStatus(m["status"]),
        details=orjson.loads(m["details"]),
        first_ts=m["first_ts"],
        last_ts=m["last_ts"],
        count=m["count"],
        assignee=m["assignee"],
        cleared_ts=m["cleared_ts"],
        acked_ts=m["acked_ts"],
        pole_id=m["pole_id"],
        root_id=m["root_id"],
        latch=bool(m["latch"]),
        released_ts=m["released_ts"],
        children=m["children"] if "children" in m else 0,
    )


def comment_of(row: Any) -> AlarmComment:
    """A comment from its table row."""
    m = row._mapping
    return AlarmComment(
        id=m["id"], alarm_id=m["alarm_id"], ts=m["ts"], author=m["author"], text=m["text"]
    )


def _check(originator_type: str, type: str) -> None:
    if originator_type not in ORIGINATOR_TYPES:
        raise InvalidInput(
            f"originator type must be one of {', '.join(ORIGINATOR_TYPES)}",
            originator_type=originator_type,
        )
    if not 1 <= len(type) <= MAX_TYPE:
        raise InvalidInput(f"alarm type must be 1 to {MAX_TYPE} characters", type=type)


class Alarms:
    """The alarm store; every change is told to ``listeners`` once it is committed (a
    listener that fails is logged and does not stop the others)."""

    def __init__(self, engine: sqlalchemy.Engine, listeners: Iterable[ChangeListener] = ()) -> None:
        self.engine = engine
        self._listeners: list[ChangeListener] = list(listeners)  # told in this order
        self._insert = upsert(engine)

    def add_listener(self, listener: ChangeListener) -> None:
        """Tell ``listener`` too, after the others, from now on (a part built after the alarms,
        which reads them, and listens to them too: the NGSI-LD notifications)."""
        self._listeners.append(listener)

    @contextlib.contextmanager
    def watching(self, listener: ChangeListener) -> Iterator[None]:
        """Tell ``listener`` too, after the others, while the block runs (a benchmark's probe)."""
        self._listeners.append(listener)
        try:
            yield
        finally:
            self._listeners.remove(listener)

    # -- raise and clear (rules, other services) ------------------------------------------
    async def raise_alarm(
        self,
        *,
        tenant_id: int,
        originator_type: str,
        originator_id: int,
        type: str,
        severity: Severity,
        details: dict[str, Any] | None = None,
        ts: int | None = None,
        pole_id: int | None = None,
        propagate: Iterable[int] = (),
        latch: bool = False,
    ) -> Alarm:
        """Raise an alarm, or bump the count of the active one of this (originator, type).

        A repeat raise updates severity, details and last occurrence (and takes back a latched
        alarm's pending clear); ``propagate`` adds tenants that see the alarm besides
        ``tenant_id`` (the originator's owner); ``latch`` keeps it active until acknowledged.
        """
        alarm, new, tenants = await asyncio.to_thread(
            self.raise_sync,
            tenant_id=tenant_id,
            originator_type=originator_type,
            originator_id=originator_id,
            type=type,
            severity=severity,
            details=details,
            ts=ts,
            pole_id=pole_id,
            propagate=propagate,
            latch=latch,
        )
        await self._tell(AlarmChange(alarm, "raised" if new else "updated", tenants))
        return alarm

    def raise_sync(
        self,
        *,
        tenant_id: int,
        originator_type: str,
        originator_id: int,
        type: str,
        severity: Severity,
        details: dict[str, Any] | None = None,
        ts: int | None = None,
        pole_id: int | None = None,
        propagate: Iterable[int] = (),
        latch: bool = False,
    ) -> tuple[Alarm, bool, tuple[int, ...]]:
        """Blocking raise (one upsert statement): the alarm, whether it is new, its tenants."""
        _check(originator_type, type)
        ts = now_ms() if ts is None else ts
        values = {
            "tenant_id": tenant_id,
            "originator_type": originator_type,
            "originator_id": originator_id,
            "type": type,
            "severity": Severity(severity).value,
            "status": AlarmStatus.ACTIVE_UNACK.value,
            "details": orjson.dumps(details or {}).decode(),
            "pole_id": pole_id,
            "first_ts": ts,
            "last_ts": ts,
            "count": 1,
            "latch": latch,
        }
        stmt = self._insert(alarms).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["originator_type", "originator_id", "type"],
            index_where=text(ACTIVE_WHERE),
            set_={
                "count": alarms.c.count + 1,
                "last_ts": func.max(alarms.c.last_ts, stmt.excluded.last_ts)
                if self.engine.dialect.name == "sqlite"
                else func.greatest(alarms.c.last_ts, stmt.excluded.last_ts),
                "severity": stmt.excluded.severity,
                "details": stmt.excluded.details,
                "released_ts": None,  # raised again: a pending clear no longer stands
            },
        ).returning(*alarms.c)
        tenants = sorted({tenant_id, *propagate})
        with self.engine.begin() as conn:
            row = conn.execute(stmt).one()
            alarm = alarm_of(row)
            conn.execute(
                self._insert(alarm_tenants)
                .values([{"alarm_id": alarm.id, "tenant_id": t} for t in tenants])
                .on_conflict_do_nothing()
            )
            seen = conn.execute(
                select(alarm_tenants.c.tenant_id).where(alarm_tenants.c.alarm_id == alarm.id)
            ).scalars()
            all_tenants = tuple(sorted(seen))
        return alarm, alarm.count == 1, all_tenants

    async def clear(
        self,
        *,
        originator_type: str,
        originator_id: int,
        type: str,
        details: dict[str, Any] | None = None,
        ts: int | None = None,
    ) -> Alarm | None:
        """Clear the active alarm of this (originator, type); None when there is none.

        A latched alarm nobody acknowledged yet is not cleared: the clear is remembered
        (``released_ts``) and done by the acknowledgement.
        """
        where = and_(
            alarms.c.originator_type == originator_type,
            alarms.c.originator_id == originator_id,
            alarms.c.type == type,
            alarms.c.status.in_(ACTIVE),
        )
        unacked_latch = and_(
            where, alarms.c.latch.is_(True), alarms.c.status == AlarmStatus.ACTIVE_UNACK.value
        )
        released = {"released_ts": now_ms() if ts is None else ts}
        held = await self._change(unacked_latch, "updated", released)
        if held is not None:
            return held
        return await self._change(where, "cleared", self._clear_values(details, ts))

    async def clear_by_id(self, who: Principal, alarm_id: int) -> Alarm:
        """Clear a visible alarm (a person closing it); clearing twice changes nothing."""
        await asyncio.to_thread(self.get_visible, who, alarm_id)
        where = and_(alarms.c.id == alarm_id, alarms.c.status.in_(ACTIVE))
        alarm = await self._change(where, "cleared", self._clear_values(None, None))
        if alarm is None:  # already in the wanted state
            return await asyncio.to_thread(self.get_visible, who, alarm_id)
        return alarm

    @staticmethod
    def _clear_values(details: dict[str, Any] | None, ts: int | None) -> dict[str, Any]:
        values: dict[str, Any] = {
            "status": sqlalchemy.case(
                (alarms.c.status == AlarmStatus.ACTIVE_ACK.value, AlarmStatus.CLEARED_ACK.value),
                else_=AlarmStatus.CLEARED_UNACK.value,
            ),
            "cleared_ts": now_ms() if ts is None else ts,
        }
        if details is not None:
            values["details"] = orjson.dumps(details).decode()
        return values

    # -- people ----------------------------------------------------------------------------
    async def acknowledge(self, who: Principal, alarm_id: int) -> Alarm:
        """Acknowledge a visible alarm; acknowledging twice changes nothing."""
        await asyncio.to_thread(self.get_visible, who, alarm_id)
        where = and_(
            alarms.c.id == alarm_id,
            alarms.c.status.in_((AlarmStatus.ACTIVE_UNACK.value, AlarmStatus.CLEARED_UNACK.value)),
        )
        now = now_ms()
        # A latched alarm whose rule stopped holding meanwhile clears with its acknowledgement.
        released = and_(alarms.c.latch.is_(True), alarms.c.released_ts.is_not(None))
        active_unack = alarms.c.status == AlarmStatus.ACTIVE_UNACK.value
        values = {
            "status": sqlalchemy.case(
                (and_(active_unack, released), AlarmStatus.CLEARED_ACK.value),
                (active_unack, AlarmStatus.ACTIVE_ACK.value),
                else_=AlarmStatus.CLEARED_ACK.value,
            ),
            "cleared_ts": sqlalchemy.case(
                (and_(active_unack, released), alarms.c.released_ts), else_=alarms.c.cleared_ts
            ),
            "acked_ts": now,
        }
        alarm = await self._change(where, "acknowledged", values)
        if alarm is None:  # already in the wanted state
            return await asyncio.to_thread(self.get_visible, who, alarm_id)
        if alarm.latch and alarm.released_ts is not None and alarm.cleared_ts is not None:
            tenants = await asyncio.to_thread(self.tenants_of, alarm.id)
            await self._tell(AlarmChange(alarm, "cleared", tenants))
        return alarm

    async def assign(self, who: Principal, alarm_id: int, assignee: str | None) -> Alarm:
        """Assign a visible alarm to someone (None unassigns)."""
        await asyncio.to_thread(self.get_visible, who, alarm_id)
        alarm = await self._change(alarms.c.id == alarm_id, "assigned", {"assignee": assignee})
        assert alarm is not None
        return alarm

    async def comment(self, who: Principal, alarm_id: int, body: str) -> AlarmComment:
        """Add a comment to a visible alarm, signed by the caller (``Principal.signature``)."""
        alarm = await asyncio.to_thread(self.get_visible, who, alarm_id)
        if not 1 <= len(body) <= 4000:
            raise InvalidInput("a comment is 1 to 4000 characters")
        row = {"alarm_id": alarm_id, "ts": now_ms(), "author": who.signature, "text": body}
        added = await asyncio.to_thread(self._add_comment, row)
        tenants = await asyncio.to_thread(self.tenants_of, alarm_id)
        await self._tell(AlarmChange(alarm, "commented", tenants))
        return added

    def _add_comment(self, row: dict[str, Any]) -> AlarmComment:
        with self.engine.begin() as conn:
            q = insert(alarm_comments).values(**row).returning(*alarm_comments.c)
            return comment_of(conn.execute(q).one())

    def comments(self, who: Principal, alarm_id: int) -> list[AlarmComment]:
        """The comments of a visible alarm, oldest first."""
        self.get_visible(who, alarm_id)
        q = (
            select(alarm_comments)
            .where(alarm_comments.c.alarm_id == alarm_id)
            .order_by(alarm_comments.c.id)
        )
        with self.engine.connect() as conn:
            return [comment_of(r) for r in conn.execute(q)]

    # -- reads -----------------------------------------------------------------------------
    def get(self, alarm_id: int) -> Alarm | None:
        """The alarm with this id, whoever sees it; None when there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(alarms).where(alarms.c.id == alarm_id)).first()
        return None if row is None else alarm_of(row)

    def active(self, originator_type: str, originator_id: int, type: str) -> Alarm | None:
        """The active alarm of this (originator, type), if any."""
        q = select(alarms).where(
            alarms.c.originator_type == originator_type,
            alarms.c.originator_id == originator_id,
            alarms.c.type == type,
            alarms.c.status.in_(ACTIVE),
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return None if row is None else alarm_of(row)

    def active_types(self, originator_type: str, ids: Sequence[int]) -> dict[int, set[str]]:
        """The types of the alarms active on each of these originators (those with none
        left out)."""
        found: dict[int, set[str]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                q = select(alarms.c.originator_id, alarms.c.type).where(
                    alarms.c.originator_type == originator_type,
                    alarms.c.originator_id.in_(ids[start : start + 500]),
                    alarms.c.status.in_(ACTIVE),
                )
                for originator, kind in conn.execute(q):
                    found.setdefault(originator, set()).add(kind)
        return found

    @staticmethod
    def _visible(who: Principal) -> Any:
        if who.is_operator:
            return sqlalchemy.true()
        return alarms.c.id.in_(
            select(alarm_tenants.c.alarm_id).where(alarm_tenants.c.tenant_id == who.tenant_id)
        )

    @staticmethod
    def _children(who: Principal) -> Any:
        """How many alarms that the caller sees are grouped under each row's alarm."""
        child = alarms.alias("child")
        q = select(func.count()).where(child.c.root_id == alarms.c.id)
        if not who.is_operator:
            q = q.where(
                child.c.id.in_(
                    select(alarm_tenants.c.alarm_id).where(
                        alarm_tenants.c.tenant_id == who.tenant_id
                    )
                )
            )
        return q.scalar_subquery().label("children")

    def get_visible(self, who: Principal, alarm_id: int) -> Alarm:
        """The alarm if the caller's tenant sees it; NotFound otherwise."""
        q = select(alarms, self._children(who)).where(alarms.c.id == alarm_id, self._visible(who))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"alarm {alarm_id} not found", alarm_id=alarm_id)
        return alarm_of(row)

    def tenants_of(self, alarm_id: int) -> tuple[int, ...]:
        """Every tenant the alarm is propagated to."""
        q = select(alarm_tenants.c.tenant_id).where(alarm_tenants.c.alarm_id == alarm_id)
        with self.engine.connect() as conn:
            return tuple(sorted(conn.execute(q).scalars()))

    def find(
        self, who: Principal, f: AlarmFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[Alarm]:
        """The visible alarms matching ``f``, newest occurrence first."""
        f = f or AlarmFilter()
        conds: list[Any] = [self._visible(who)]
        if f.status:
            conds.append(alarms.c.status.in_([AlarmStatus(s).value for s in f.status]))
        if f.severity:
            conds.append(alarms.c.severity.in_([Severity(s).value for s in f.severity]))
        for col, value in (
            (alarms.c.type, f.type),
            (alarms.c.originator_type, f.originator_type),
            (alarms.c.originator_id, f.originator_id),
            (alarms.c.assignee, f.assignee),
        ):
            if value is not None:
                conds.append(col == value)
        if f.pole_id is not None:
            # Propagation to the pole: alarms of the pole itself and of its devices.
            conds.append(
                or_(
                    alarms.c.pole_id == f.pole_id,
                    and_(alarms.c.originator_type == "pole", alarms.c.originator_id == f.pole_id),
                )
            )
        if f.roots:
            conds.append(alarms.c.root_id.is_(None))
        if f.root_id is not None:
            conds.append(alarms.c.root_id == f.root_id)
        if f.since is not None:
            conds.append(alarms.c.last_ts >= f.since)
        if f.until is not None:
            conds.append(alarms.c.last_ts < f.until)
        q = (
            select(alarms, self._children(who))
            .where(*conds)
            .order_by(alarms.c.last_ts.desc(), alarms.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            return [alarm_of(r) for r in conn.execute(q)]

    def count_active(self) -> int:
        """How many alarms are active in the whole city."""
        q = select(func.count()).select_from(alarms).where(alarms.c.status.in_(ACTIVE))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def active_by_severity(self, who: Principal) -> dict[Severity, int]:
        """How many visible alarms are active, by severity (severities without one left out)."""
        q = (
            select(alarms.c.severity, func.count())
            .where(alarms.c.status.in_(ACTIVE), self._visible(who))
            .group_by(alarms.c.severity)
        )
        with self.engine.connect() as conn:
            return {Severity(s): int(n) for s, n in conn.execute(q)}

    def purge_cleared(self, before: int) -> int:
        """Delete alarms cleared before ``before`` (ms); return how many."""
        with self.engine.begin() as conn:
            q = delete(alarms).where(alarms.c.status.not_in(ACTIVE), alarms.c.cleared_ts < before)
            return int(conn.execute(q).rowcount)

    # -- internals -------------------------------------------------------------------------
    async def _change(self, where: Any, change: ChangeKind, values: dict[str, Any]) -> Alarm | None:
        found = await asyncio.to_thread(self._update, where, values)
        if found is None:
            return None
        alarm, tenants = found
        await self._tell(AlarmChange(alarm, change, tenants))
        return alarm

    def _update(self, where: Any, values: dict[str, Any]) -> tuple[Alarm, tuple[int, ...]] | None:
        with self.engine.begin() as conn:
            row = conn.execute(update(alarms).where(where).values(**values).returning(*alarms.c))
            first = row.first()
            if first is None:
                return None
            alarm = alarm_of(first)
            q = select(alarm_tenants.c.tenant_id).where(alarm_tenants.c.alarm_id == alarm.id)
            return alarm, tuple(sorted(conn.execute(q).scalars()))

    async def _tell(self, change: AlarmChange) -> None:
        for listener in self._listeners:
            try:
                result = listener(change)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("alarm listener %r failed", listener)
