"""Work orders (工单): the maintenance job an alarm turns into, followed to its end.

    open ──► assigned ──► in_progress ──► resolved ──► closed
      └─────────────────────────────────────▲   └──► in_progress (reopen)
      (dismissed: open ──► closed)

A work order is opened from an alarm (by a rule's ``work_order`` action or by hand) or stands
alone for a device or pole. It belongs to its alarm's tenant (or its device's owner), is
assigned to a maintenance team, and has a deadline from its severity's SLA. Every change leaves
a history row: who, when, from which status to which, and the comment.

Two things happen without anyone asking: a periodic check raises a ``work_order_overdue`` alarm
on an order still unresolved after its deadline (cleared when it is resolved), and when the
originating alarm clears the order gets ``resolve_suggested`` — a hint, never an automatic
close, because a cleared alarm does not prove the repair was done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from smartpole.hub.alarms.store import Alarms
from smartpole.hub.workorders.lifecycle import (
    DEFAULT_SLA,
    MAX_TEXT,
    OVERDUE,
    TRANSITIONS,
    UNRESOLVED,
    parse_sla,
)
from smartpole.hub.workorders.rows import entry_of, team_of, work_order_of
from smartpole.hub.workorders.tables import teams, work_order_history, work_orders
from smartpole.model.alarms import Alarm, AlarmChange
from smartpole.model.clock import now_ms
from smartpole.model.lifecycle import Severity, WorkOrderStatus
from smartpole.model.workorders import Team, WorkOrder, WorkOrderEntry
from smartpole.registry.access import Principal
from smartpole.store.schema import tenants

__all__ = ["WorkOrderFilter", "WorkOrders"]

log = logging.getLogger(__name__)
S = WorkOrderStatus


@dataclass(frozen=True, slots=True)
class WorkOrderFilter:
    """Which work orders a listing wants; ``None`` means any."""

    status: list[WorkOrderStatus] | None = None
    team_id: int | None = None
    overdue: bool | None = None
    alarm_id: int | None = None
    device_id: int | None = None
    pole_id: int | None = None
    severity: Severity | None = None


class WorkOrders:
    """Work orders and maintenance teams; satisfies the rules engine's ``WorkOrderOpener``.

    ``alarms`` is where overdue alarms are raised and cleared; ``clock`` gives the time in ms
    (tests pass their own to be "hours later" without sleeping).
    """

    def __init__(
        self,
        engine: Engine,
        alarms: Alarms | None = None,
        *,
        sla: Mapping[Severity, int] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.engine = engine
        self.alarms = alarms
        self.sla = dict(sla) if sla is not None else parse_sla(DEFAULT_SLA)
        self.clock = clock

    # -- teams ------------------------------------------------------------------------------
    def create_team(self, tenant_id: int, name: str, title: str = "", contact: str = "") -> Team:
        """Add a maintenance team to a tenant; its name is unique within the tenant."""
        values = {"tenant_id": tenant_id, "name": name, "title": title, "contact": contact}
        try:
            with self.engine.begin() as conn:
                q = insert(teams).values(**values, created=self.clock()).returning(teams.c.id)
                team_id = int(conn.execute(q).scalar_one())
        except IntegrityError as err:
            raise Conflict(f"team {name!r} exists", name=name) from err
        return self._team(team_id)

    def _team(self, team_id: int, who: Principal | None = None) -> Team:
        q = select(teams).where(teams.c.id == team_id)
        if who is not None and not who.is_operator:
            q = q.where(teams.c.tenant_id == who.tenant_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"team {team_id} not found", team_id=team_id)
        return team_of(row)

    def get_team(self, who: Principal, team_id: int) -> Team:
        """A team of the caller's tenant (the city operator sees every team)."""
        return self._team(team_id, who)

    def list_teams(self, who: Principal) -> list[Team]:
        """The teams the caller sees, by id."""
        q = select(teams).order_by(teams.c.id)
        if not who.is_operator:
            q = q.where(teams.c.tenant_id == who.tenant_id)
        with self.engine.connect() as conn:
            return [team_of(r) for r in conn.execute(q)]

    def update_team(self, who: Principal, team_id: int, **values: Any) -> Team:
        """Rename a team or change its title or contact."""
        self._team(team_id, who)
        if values:
            try:
                with self.engine.begin() as conn:
                    conn.execute(update(teams).where(teams.c.id == team_id).values(**values))
            except IntegrityError as err:
                raise Conflict("team name taken", **values) from err
        return self._team(team_id)

    def delete_team(self, who: Principal, team_id: int) -> None:
        """Remove a team; unresolved work orders assigned to it go back to ``open``."""
        self._team(team_id, who)
        now = self.clock()
        with self.engine.begin() as conn:
            back = conn.execute(
                update(work_orders)
                .where(work_orders.c.team_id == team_id, work_orders.c.status.in_(UNRESOLVED))
                .values(status=S.OPEN.value, team_id=None, updated=now)
                .returning(work_orders.c.id, work_orders.c.status)
            ).all()
            for wo_id, _ in back:
                self._log(conn, wo_id, who.signature, "unassigned", None, S.OPEN, "team deleted")
            conn.execute(delete(teams).where(teams.c.id == team_id))

    def _team_for(self, conn: Any, tenant_id: int, team_id: int) -> Team:
        """A team that may take a work order of ``tenant_id``: its own, or the city's."""
        q = (
            select(teams)
            .join(tenants, tenants.c.id == teams.c.tenant_id)
            .where(
                teams.c.id == team_id,
                or_(teams.c.tenant_id == tenant_id, tenants.c.is_operator.is_(True)),
            )
        )
        row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"team {team_id} not found", team_id=team_id)
        return team_of(row)

    def _team_by_name(self, conn: Any, tenant_id: int, name: str) -> int | None:
        q = (
            select(teams.c.id)
            .join(tenants, tenants.c.id == teams.c.tenant_id)
            .where(
                teams.c.name == name,
                or_(teams.c.tenant_id == tenant_id, tenants.c.is_operator.is_(True)),
            )
            # The tenant's own team wins over a city team of the same name.
            .order_by((teams.c.tenant_id == tenant_id).desc(), teams.c.id)
        )
        found = conn.execute(q).scalars().first()
        return None if found is None else int(found)

    # -- creation ---------------------------------------------------------------------------
    async def open_for_alarm(self, alarm: Alarm, team: str | None, note: str | None) -> int:
        """Open a work order for an alarm (a rule's action); return its id.

        An alarm that already has an unresolved work order gets no second one: rules fire
        again and again while a fault lasts. An unknown team name leaves the order open.
        """
        return await asyncio.to_thread(self._open_for_alarm, alarm, team, note)

    def _open_for_alarm(self, alarm: Alarm, team: str | None, note: str | None) -> int:
        with self.engine.begin() as conn:
            existing = conn.execute(
                select(work_orders.c.id).where(
                    work_orders.c.alarm_id == alarm.id, work_orders.c.status.in_(UNRESOLVED)
                )
            ).scalar()
            if existing is not None:
                return int(existing)
            team_id = self._team_by_name(conn, alarm.tenant_id, team) if team else None
            if team and team_id is None:
                log.warning("work order for alarm %d: no team %r; left open", alarm.id, team)
            return self._insert(
                conn,
                actor="rule",
                tenant_id=alarm.tenant_id,
                alarm=alarm,
                title=None,
                description=note or "",
                severity=alarm.severity,
                team_id=team_id,
            )

    def create(
        self,
        *,
        actor: str,
        tenant_id: int,
        alarm: Alarm | None = None,
        device_id: int | None = None,
        pole_id: int | None = None,
        title: str | None = None,
        description: str = "",
        severity: Severity | None = None,
        team_id: int | None = None,
    ) -> int:
        """Open a work order by hand, from an alarm or for a device or pole; return its id.

        The caller has checked that ``actor`` may act for ``tenant_id`` and see the alarm,
        device or pole.
        """
        if alarm is None and device_id is None and pole_id is None:
            raise InvalidInput("a work order needs an alarm, a device or a pole")
        if alarm is None and not title:
            raise InvalidInput("a work order without an alarm needs a title")
        with self.engine.begin() as conn:
            if team_id is not None:
                self._team_for(conn, tenant_id, team_id)
            return self._insert(
                conn,
                actor=actor,
                tenant_id=tenant_id,
                alarm=alarm,
                device_id=device_id,
                pole_id=pole_id,
                title=title,
                description=description,
                severity=severity or (alarm.severity if alarm else Severity.MINOR),
                team_id=team_id,
            )

    def _insert(
        self,
        conn: Any,
        *,
        actor: str,
        tenant_id: int,
        alarm: Alarm | None,
        title: str | None,
        description: str,
        severity: Severity,
        team_id: int | None,
        device_id: int | None = None,
        pole_id: int | None = None,
    ) -> int:
        if len(description) > MAX_TEXT:
            raise InvalidInput(f"a description is at most {MAX_TEXT} characters")
        now = self.clock()
        if alarm is not None:
            if alarm.originator_type == "device":
                device_id = device_id or alarm.originator_id
            if alarm.originator_type == "pole":
                pole_id = pole_id or alarm.originator_id
            pole_id = pole_id or alarm.pole_id
            title = title or f"{alarm.type} on {alarm.originator_type} {alarm.originator_id}"
        status = S.ASSIGNED if team_id is not None else S.OPEN
        q = (
            insert(work_orders)
            .values(
                tenant_id=tenant_id,
                alarm_id=alarm.id if alarm else None,
                device_id=device_id,
                pole_id=pole_id,
                title=(title or "")[:200],
                description=description,
                severity=Severity(severity).value,
                status=status.value,
                team_id=team_id,
                created=now,
                updated=now,
                deadline=now + self.sla[Severity(severity)],
                resolve_suggested=False,
            )
            .returning(work_orders.c.id)
        )
        wo_id = int(conn.execute(q).scalar_one())
        details = {"alarm_id": alarm.id} if alarm else {}
        self._log(conn, wo_id, actor, "created", None, S.OPEN, description, details)
        if team_id is not None:
            self._log(conn, wo_id, actor, "assigned", S.OPEN, S.ASSIGNED, "", {"team_id": team_id})
        return wo_id

    # -- reads ------------------------------------------------------------------------------
    @staticmethod
    def _visible(who: Principal) -> Any:
        return True if who.is_operator else work_orders.c.tenant_id == who.tenant_id

    def _select(self) -> Any:
        return select(work_orders, teams.c.name.label("team")).outerjoin(
            teams, teams.c.id == work_orders.c.team_id
        )

    def get(self, who: Principal, wo_id: int) -> WorkOrder:
        """A visible work order with its history, oldest change first."""
        with self.engine.connect() as conn:
            row = conn.execute(
                self._select().where(work_orders.c.id == wo_id, self._visible(who))
            ).first()
            if row is None:
                raise NotFound(f"work order {wo_id} not found", work_order_id=wo_id)
            hist = conn.execute(
                select(work_order_history)
                .where(work_order_history.c.work_order_id == wo_id)
                .order_by(work_order_history.c.id)
            )
            return work_order_of(row, self.clock(), [entry_of(h) for h in hist])

    def find(
        self,
        who: Principal,
        f: WorkOrderFilter | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[WorkOrder], int]:
        """A page of visible work orders matching ``f`` (newest first) and the total."""
        f = f or WorkOrderFilter()
        now = self.clock()
        conds: list[Any] = [self._visible(who)]
        if f.status:
            conds.append(work_orders.c.status.in_([S(s).value for s in f.status]))
        for col, value in (
            (work_orders.c.team_id, f.team_id),
            (work_orders.c.alarm_id, f.alarm_id),
            (work_orders.c.device_id, f.device_id),
            (work_orders.c.pole_id, f.pole_id),
            (work_orders.c.severity, f.severity),
        ):
            if value is not None:
                conds.append(col == value)
        if f.overdue is not None:
            late = and_(work_orders.c.status.in_(UNRESOLVED), work_orders.c.deadline < now)
            conds.append(late if f.overdue else ~late)
        where = and_(*conds)
        with self.engine.connect() as conn:
            total = conn.execute(
                select(func.count()).select_from(work_orders).where(where)
            ).scalar_one()
            rows = conn.execute(
                self._select()
                .where(where)
                .order_by(work_orders.c.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [work_order_of(r, now) for r in rows], int(total)

    # -- changes ----------------------------------------------------------------------------
    async def transition(
        self, who: Principal, wo_id: int, to: WorkOrderStatus, comment: str = ""
    ) -> WorkOrder:
        """Move a visible work order to ``to``; InvalidTransition names the allowed steps.

        Moving to ``assigned`` needs a team (see :meth:`assign`). Resolving or closing an
        overdue order clears its overdue alarm.
        """
        cleared = await asyncio.to_thread(self._transition, who, wo_id, S(to), comment)
        if cleared:
            await self._clear_overdue(wo_id)
        return await asyncio.to_thread(self.get, who, wo_id)

    def _transition(self, who: Principal, wo_id: int, to: WorkOrderStatus, comment: str) -> bool:
        _check_comment(comment)
        now = self.clock()
        with self.engine.begin() as conn:
            wo = self._locked(conn, who, wo_id)
            current = wo.status
            if to not in TRANSITIONS[current]:
                raise InvalidTransition(
                    f"work order {wo_id} is {current}; it can go to "
                    + (", ".join(TRANSITIONS[current]) or "nothing (it is closed)"),
                    work_order_id=wo_id,
                    current=current.value,
                    to=to.value,
                    allowed=[s.value for s in TRANSITIONS[current]],
                )
            if to is S.ASSIGNED and wo.team_id is None:
                raise InvalidInput("assign a team to move a work order to assigned")
            values: dict[str, Any] = {"status": to.value, "updated": now}
            if to is S.RESOLVED:
                values["resolved"] = now
            if to is S.CLOSED:
                values["closed"] = now
            if current is S.RESOLVED and to is S.IN_PROGRESS:  # reopened
                values.update(resolved=None, resolve_suggested=False)
            done = to in (S.RESOLVED, S.CLOSED)
            if done:
                values["overdue_since"] = None
            n = conn.execute(
                update(work_orders)
                .where(work_orders.c.id == wo_id, work_orders.c.status == current.value)
                .values(**values)
            ).rowcount
            if n != 1:  # someone else moved it in between: let the caller retry on fresh state
                raise Conflict(f"work order {wo_id} changed meanwhile; retry", work_order_id=wo_id)
            self._log(conn, wo_id, who.signature, "transition", current, to, comment)
            return done and wo.overdue_since is not None

    async def assign(
        self, who: Principal, wo_id: int, team_id: int, comment: str = ""
    ) -> WorkOrder:
        """Give a work order to a team; an ``open`` order becomes ``assigned``."""
        await asyncio.to_thread(self._assign, who, wo_id, team_id, comment)
        return await asyncio.to_thread(self.get, who, wo_id)

    def _assign(self, who: Principal, wo_id: int, team_id: int, comment: str) -> None:
        _check_comment(comment)
        with self.engine.begin() as conn:
            wo = self._locked(conn, who, wo_id)
            current = wo.status
            if current not in (S.OPEN, S.ASSIGNED, S.IN_PROGRESS):
                raise InvalidTransition(
                    f"work order {wo_id} is {current}; only an unresolved one can be assigned",
                    work_order_id=wo_id,
                    current=current.value,
                    allowed=[s.value for s in TRANSITIONS[current]],
                )
            self._team_for(conn, wo.tenant_id, team_id)
            to = S.ASSIGNED if current is S.OPEN else current
            conn.execute(
                update(work_orders)
                .where(work_orders.c.id == wo_id)
                .values(team_id=team_id, status=to.value, updated=self.clock())
            )
            details = {"team_id": team_id, "previous_team_id": wo.team_id}
            self._log(conn, wo_id, who.signature, "assigned", current, to, comment, details)

    def comment(self, who: Principal, wo_id: int, text: str) -> WorkOrderEntry:
        """Add a comment to a visible work order's history; return the entry."""
        if not 1 <= len(text) <= MAX_TEXT:
            raise InvalidInput(f"a comment is 1 to {MAX_TEXT} characters")
        with self.engine.begin() as conn:
            status = self._locked(conn, who, wo_id).status
            conn.execute(
                update(work_orders).where(work_orders.c.id == wo_id).values(updated=self.clock())
            )
            entry_id = self._log(conn, wo_id, who.signature, "comment", status, status, text)
            row = conn.execute(
                select(work_order_history).where(work_order_history.c.id == entry_id)
            ).one()
        return entry_of(row)

    def _locked(self, conn: Any, who: Principal, wo_id: int) -> WorkOrder:
        q = select(work_orders).where(work_orders.c.id == wo_id, self._visible(who))
        if self.engine.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"work order {wo_id} not found", work_order_id=wo_id)
        return work_order_of(row, self.clock())

    def _log(
        self,
        conn: Any,
        wo_id: int,
        actor: str,
        action: str,
        from_status: WorkOrderStatus | None,
        to_status: WorkOrderStatus | None,
        comment: str = "",
        details: dict[str, Any] | None = None,
    ) -> int:
        q = (
            insert(work_order_history)
            .values(
                work_order_id=wo_id,
                ts=self.clock(),
                actor=actor[:200],
                action=action,
                from_status=from_status.value if from_status else None,
                to_status=to_status.value if to_status else None,
                comment=comment,
                details=orjson.dumps(details or {}).decode(),
            )
            .returning(work_order_history.c.id)
        )
        return int(conn.execute(q).scalar_one())

    # -- what happens by itself -------------------------------------------------------------
    async def check_overdue(self, now: int | None = None) -> int:
        """Raise ``work_order_overdue`` on unresolved orders past their deadline; return how many.

        Each order is raised once per overdue spell (``overdue_since`` remembers it); the alarm
        is raised before the mark so a failure in between means a repeat raise next time (which
        only bumps the alarm's count), never a missed one.
        """
        if self.alarms is None:
            return 0
        now = self.clock() if now is None else now
        due = await asyncio.to_thread(self._due, now)
        for wo in due:
            await self.alarms.raise_alarm(
                tenant_id=wo.tenant_id,
                originator_type="work_order",
                originator_id=wo.id,
                type=OVERDUE,
                severity=wo.severity,
                details={
                    "title": wo.title,
                    "status": wo.status.value,
                    "deadline": wo.deadline,
                    "team_id": wo.team_id,
                    "alarm_id": wo.alarm_id,
                },
                ts=now,
                pole_id=wo.pole_id,
            )
            await asyncio.to_thread(self._mark_overdue, wo.id, now)
        return len(due)

    def _due(self, now: int) -> list[WorkOrder]:
        q = select(work_orders).where(
            work_orders.c.status.in_(UNRESOLVED),
            work_orders.c.deadline < now,
            work_orders.c.overdue_since.is_(None),
        )
        with self.engine.connect() as conn:
            return [work_order_of(r, now) for r in conn.execute(q.order_by(work_orders.c.id))]

    def _mark_overdue(self, wo_id: int, now: int) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(
                update(work_orders)
                .where(work_orders.c.id == wo_id, work_orders.c.overdue_since.is_(None))
                .values(overdue_since=now)
                .returning(work_orders.c.status)
            ).all()
            for (status,) in n:
                self._log(conn, wo_id, "hub", "overdue", S(status), S(status), "deadline passed")

    async def _clear_overdue(self, wo_id: int) -> None:
        if self.alarms is not None:
            await self.alarms.clear(originator_type="work_order", originator_id=wo_id, type=OVERDUE)

    async def on_alarm_change(self, change: AlarmChange) -> None:
        """Alarm listener: when an alarm clears, suggest resolving its unresolved orders."""
        alarm = change.alarm
        if change.change != "cleared" or alarm.originator_type == "work_order":
            return
        await asyncio.to_thread(self._suggest_resolve, alarm)

    def _suggest_resolve(self, alarm: Alarm) -> None:
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(work_orders)
                .where(
                    work_orders.c.alarm_id == alarm.id,
                    work_orders.c.status.in_(UNRESOLVED),
                    work_orders.c.resolve_suggested.is_(False),
                )
                .values(resolve_suggested=True, updated=self.clock())
                .returning(work_orders.c.id, work_orders.c.status)
            ).all()
            for wo_id, status in rows:
                self._log(
                    conn,
                    wo_id,
                    "hub",
                    "resolve_suggested",
                    S(status),
                    S(status),
                    f"alarm {alarm.id} ({alarm.type}) cleared",
                    {"alarm_id": alarm.id, "cleared_ts": alarm.cleared_ts},
                )


def _check_comment(comment: str) -> None:
    if len(comment) > MAX_TEXT:
        raise InvalidInput(f"a comment is at most {MAX_TEXT} characters")
