"""A tenant's lighting as a service: its programs, groups, holiday calendars, calendar entries and
overrides changed one at a time or by a whole document, the plans compiled from them for its lamps
(grouped by pole gateway), and the energy its lamps used against their dusk-to-dawn baseline.

One validation: after any change the tenant's whole document must parse (``parse_lighting``);
a change that would break it (an entry naming an unknown program, deleting a program in use) is
refused with InvalidInput, located in the document (``["calendar", 2, "program"]``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from smartpole.errors import InvalidInput, NotFound
from smartpole.lighting.diagnostics import (
    DEFAULT_RATED_LIFE_H,
    MAX_HORIZON_YEARS,
    NIGHT_HOURS_PER_DAY,
    BurnHours,
    RoadForecast,
    burn_hours_forecast,
    burn_rate,
)
from smartpole.lighting.documents import LightingDocument, lighting_body, parse_lighting
from smartpole.lighting.energy import By, Metered, Savings, metered, monthly_report, savings
from smartpole.lighting.lamps import BURN_HOURS_KEY, LampInventory, LampRecord
from smartpole.lighting.plan import Plan, PlanCache, changed, compile_plans, level_at, members
from smartpole.lighting.store import PARTS, Body, EnergySettings, LightingStore, StoredOverride
from smartpole.model.clock import now_ms
from smartpole.model.documents import is_yaml, locate_lines, parse_document
from smartpole.model.energy import GridFactor, Tariff
from smartpole.model.lighting import Lamp, Reason
from smartpole.model.types import Role
from smartpole.registry.access import Principal
from smartpole.store.series import TimeSeries

__all__ = [
    "MAX_NIGHTS",
    "PLAN_NIGHTS",
    "LightingService",
    "PlanListener",
    "by_reason",
    "lighting_body_all",
    "night_date",
]

NOTHING = Metered({}, {})
PlanListener = Callable[[str, set[str]], None]
"""(tenant name, the lamps whose plan changed) after a change or a recompile."""
PLAN_NIGHTS = 7  # how many nights ahead a gateway's plan runs
MAX_NIGHTS = 31
MAX_OVERRIDE_MS = 366 * 86_400_000
MAX_NAME = 128  # the stored names' column width
MAX_REASON = 500
DAY_MS = 86_400_000
RATE_DAYS = 30  # burn hours a day from a month's growth: a season's nights barely change in it
RATE_FLOOR_DAYS = 400  # an older reading is not looked for: over a year, one seek may be slow


def night_date(ts_ms: int, zone: ZoneInfo) -> dt.date:
    """The date of the evening of the night ``ts_ms`` falls in (before local noon: yesterday's)."""
    local = dt.datetime.fromtimestamp(ts_ms / 1000, zone)
    return local.date() if local.hour >= 12 else local.date() - dt.timedelta(days=1)


def _bad(loc: list[Any], msg: str) -> InvalidInput:
    return InvalidInput(msg, errors=[{"loc": loc, "msg": msg}])


class LightingService:
    """Lighting per tenant; writes need the operator role, reads any role of the tenant."""

    def __init__(
        self,
        store: LightingStore,
        inventory: LampInventory,
        series: TimeSeries,
        clock: Callable[[], int] = now_ms,
        plan_listeners: Sequence[PlanListener] = (),
        nights: int = PLAN_NIGHTS,
    ) -> None:
        self.store = store
        self.inventory = inventory
        self.series = series
        self.clock = clock
        self.plan_listeners = list(plan_listeners)
        self.nights = nights
        self._lock = threading.Lock()
        # per tenant: the last lamps (the same object while equal, so PlanCache keeps its
        # groups' members), the cache of plans, and the plans last compiled
        self._lamps: dict[int, list[Lamp]] = {}
        self._caches: dict[int, PlanCache] = {}
        self._compiled: dict[int, dict[str, Plan]] = {}
        self._tenant_locks: dict[int, threading.RLock] = {}

    # -- the document -----------------------------------------------------------------------
    def _today(self, tenant_id: int) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock() / 1000, self.zone(tenant_id)).date()

    def zone(self, tenant_id: int) -> ZoneInfo:
        """The tenant's time zone."""
        return self.inventory.zone(tenant_id)

    def _check(self, tenant_id: int) -> Callable[[Body], Body]:
        def check(body: Body) -> Body:
            long = [
                {"loc": [part, i, "name"], "msg": f"a name is at most {MAX_NAME} characters"}
                for part in PARTS
                for i, item in enumerate(body.get(part, []))
                if isinstance(item, dict) and len(str(item.get("name", ""))) > MAX_NAME
            ]
            if long:
                raise InvalidInput(f"{len(long)} name(s) too long", errors=long)
            return lighting_body_all(parse_lighting(body, self._today(tenant_id)))

        return check

    def _change(self, who: Principal, edit: Callable[[Body], Body]) -> Body:
        who.require(Role.OPERATOR)
        body = self.store.change(who.tenant_id, edit, self._check(who.tenant_id))
        self._plans_changed(who)
        return body

    def document(self, who: Principal) -> LightingDocument:
        """The tenant's lighting document (it always parses: every change was checked)."""
        return parse_lighting(self.store.body(who.tenant_id), self._today(who.tenant_id))

    def items(self, who: Principal, part: str) -> list[dict[str, Any]]:
        """The items of one part (``programs``, ``groups``, ``holidays``, ``calendar``)."""
        return self.store.body(who.tenant_id)[_part(part)]

    def item(self, who: Principal, part: str, name: str) -> dict[str, Any]:
        """One item by name; NotFound otherwise."""
        for item in self.items(who, part):
            if item["name"] == name:
                return item
        raise NotFound(f"no {_part(part)} item {name!r}", name=name)

    def put_item(self, who: Principal, part: str, item: Any) -> tuple[dict[str, Any], bool]:
        """Add an item, or replace the one of its name; return it (as stored) and whether it
        was created. InvalidInput, located in the document, if the whole would not parse."""
        part = _part(part)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise _bad(["name"], "an item is an object with a name")
        name = item["name"]
        created = True

        def edit(body: Body) -> Body:
            nonlocal created
            items = list(body[part])
            at = next((i for i, x in enumerate(items) if x["name"] == name), None)
            if at is None:
                items.append(item)
            else:
                items[at], created = item, False
            return {**body, part: items}

        body = self._change(who, edit)
        return next(x for x in body[part] if x["name"] == name), created

    def delete_item(self, who: Principal, part: str, name: str) -> None:
        """Delete an item; InvalidInput if something still uses it, NotFound if none."""
        part = _part(part)
        self.item(who, part, name)
        self._change(who, lambda body: {**body, part: [x for x in body[part] if x["name"] != name]})

    def import_document(
        self, who: Principal, text: bytes, content_type: str, replace: bool
    ) -> LightingDocument:
        """Import a JSON or YAML document: replacing the tenant's (``replace``) or merged into
        it item by item (by name). Nothing is saved unless the whole parses; YAML problems
        carry their line."""
        doc = parse_document(text, content_type)
        try:
            parse_lighting(doc, self._today(who.tenant_id))
        except InvalidInput as err:
            if is_yaml(content_type):
                locate_lines(err, text)
            raise
        given = lighting_body_all(parse_lighting(doc, self._today(who.tenant_id)))

        def edit(body: Body) -> Body:
            if replace:
                return given
            merged: Body = {}
            for part in PARTS:
                new = {x["name"]: x for x in given[part]}
                kept = [new.pop(x["name"], x) for x in body[part]]
                merged[part] = kept + list(new.values())
            return merged

        self._change(who, edit)
        return self.document(who)

    def export_body(self, who: Principal) -> dict[str, Any]:
        """The tenant's document as plain data (what ``import_document`` takes back)."""
        return lighting_body(self.document(who))

    # -- overrides --------------------------------------------------------------------------
    def overrides(self, who: Principal, running: bool = False) -> list[StoredOverride]:
        """The tenant's overrides (only those not yet over with ``running``)."""
        return self.store.overrides(who.tenant_id, self.clock() if running else None)

    def override(self, who: Principal, override_id: int) -> StoredOverride:
        """One of the tenant's overrides."""
        return self.store.override(who.tenant_id, override_id)

    def add_override(
        self,
        who: Principal,
        group: str,
        level: float,
        until_ms: int | None = None,
        duration_s: float | None = None,
        reason: str = "",
    ) -> StoredOverride:
        """Hold a group at a level from now until ``until_ms`` or for ``duration_s`` (exactly
        one), then back to its program; InvalidInput naming each bad field."""
        who.require(Role.OPERATOR)
        now = self.clock()
        errors: list[dict[str, Any]] = []
        if group not in {g.name for g in self.document(who).groups}:
            errors.append({"loc": ["group"], "msg": f"no group {group!r}"})
        if not 0 <= level <= 100:
            errors.append({"loc": ["level"], "msg": "a level is between 0 and 100 (%)"})
        if (until_ms is None) == (duration_s is None):
            errors.append({"loc": ["until"], "msg": "give either until or duration_s"})
        else:
            until = until_ms if until_ms is not None else now + round((duration_s or 0) * 1000)
            if not now < until <= now + MAX_OVERRIDE_MS:
                loc = "until" if until_ms is not None else "duration_s"
                errors.append({"loc": [loc], "msg": "an override ends within a year from now"})
        if len(reason) > MAX_REASON:
            errors.append({"loc": ["reason"], "msg": f"at most {MAX_REASON} characters"})
        if errors:
            raise InvalidInput("; ".join(e["msg"] for e in errors), errors=errors)
        stored = self.store.add_override(
            who.tenant_id, group, level, now, until, reason, who.signature[:200]
        )
        self._plans_changed(who)
        return stored

    def hold(
        self, who: Principal, lamps: Sequence[str], level: float, until_ms: int, reason: str
    ) -> StoredOverride | None:
        """Hold the listed lamps (of the tenant's; others are left out) at ``level`` until
        ``until_ms``, then back to their program: a rule's override (the SOS rule's light).
        None when none of the lamps is the tenant's or the hold is already over."""
        who.require(Role.OPERATOR)
        now = self.clock()
        mine = {r.lamp.id for r in self.lamps(who)}
        chosen = sorted(set(lamps) & mine)
        if not chosen or until_ms <= now:
            return None
        until = min(until_ms, now + MAX_OVERRIDE_MS)
        level = min(100.0, max(0.0, level))
        stored = self.store.add_override(
            who.tenant_id, "", level, now, until, reason[:MAX_REASON], who.signature[:200], chosen
        )
        self._plans_changed(who)
        return stored

    def end_override(self, who: Principal, override_id: int) -> StoredOverride:
        """End an override now: its lamps go back to their program."""
        who.require(Role.OPERATOR)
        ended = self.store.end_override(who.tenant_id, override_id, self.clock())
        self._plans_changed(who)
        return ended

    # -- lamps and plans --------------------------------------------------------------------
    def lamps(self, who: Principal) -> list[LampRecord]:
        """The tenant's lamps on poles."""
        return self.inventory.lamps(who.tenant_id)

    def _lamp_list(self, tenant_id: int, records: Sequence[LampRecord]) -> list[Lamp]:
        lamps = [r.lamp for r in records]
        with self._lock:
            if self._lamps.get(tenant_id) != lamps:
                self._lamps[tenant_id] = lamps
            return self._lamps[tenant_id]

    def _plans(
        self,
        who: Principal,
        lamps: Sequence[Lamp],
        first: dt.date,
        nights: int,
        cache: PlanCache | None = None,
    ) -> dict[str, Plan]:
        doc = self.document(who)
        stored = self.overrides(who, running=True)
        running = [o.override() for o in stored]
        # a rule's hold of listed lamps is an override of a group of its own
        held = [g for g in (o.held for o in stored) if g is not None]
        programs = {p.name: p for p in doc.programs}
        return compile_plans(
            lamps, [*doc.groups, *held], programs, doc.calendar_of(), running, first, nights, cache
        )

    def _lamps_of(self, who: Principal, group: str | None, lamp: str | None) -> list[LampRecord]:
        records = self.lamps(who)
        if lamp is not None:
            found = [r for r in records if r.lamp.id == lamp]
            if not found:
                raise NotFound(f"no lamp {lamp!r}", lamp=lamp)
            return found
        if group is None:
            return records
        groups = [g for g in self.document(who).groups if g.name == group]
        if not groups:
            raise NotFound(f"no group {group!r}", group=group)
        ids = members(groups, [r.lamp for r in records])[group]
        return [r for r in records if r.lamp.id in ids]

    def plan(
        self,
        who: Principal,
        group: str | None = None,
        lamp: str | None = None,
        date: dt.date | None = None,
        nights: int = 1,
    ) -> dict[str, Plan]:
        """The plan of each lamp of a group (or one lamp) for ``nights`` nights from the
        evening of ``date`` (tonight by default), by lamp."""
        if not 1 <= nights <= MAX_NIGHTS:
            raise _bad(["nights"], f"nights is from 1 to {MAX_NIGHTS}")
        chosen = self._lamps_of(who, group, lamp)
        first = date or night_date(self.clock(), self.zone(who.tenant_id))
        return self._plans(who, [r.lamp for r in chosen], first, nights)

    def at(self, who: Principal, lamp: str, ts_ms: int | None = None) -> tuple[float, Reason]:
        """The level a lamp should have at ``ts_ms`` (now by default), and why."""
        ts = self.clock() if ts_ms is None else ts_ms
        chosen = self._lamps_of(who, None, lamp)
        night = night_date(ts, self.zone(who.tenant_id))
        plan = self._plans(who, [r.lamp for r in chosen], night, 1)[lamp]
        return level_at(plan, ts)

    def compile(self, who: Principal) -> dict[str | None, dict[str, Plan]]:
        """Every lamp's plan for the next nights by its pole's gateway (None: no gateway);
        a change since the last compile recompiles only the plans it touches."""
        tid = who.tenant_id
        with self._compiling(tid):  # one compile of a tenant at a time: the last one stands
            lamps = self._lamp_list(tid, self.lamps(who))
            with self._lock:
                cache = self._caches.setdefault(tid, PlanCache())
            first = night_date(self.clock(), self.zone(tid))
            cache.prune(first)
            plans = self._plans(who, lamps, first, self.nights, cache)
            with self._lock:
                self._compiled[tid] = plans
        out: dict[str | None, dict[str, Plan]] = {}
        for lamp in lamps:
            out.setdefault(lamp.gateway or None, {})[lamp.id] = plans[lamp.id]
        return out

    def _compiling(self, tenant_id: int) -> threading.RLock:
        with self._lock:
            return self._tenant_locks.setdefault(tenant_id, threading.RLock())

    def compiled(self, tenant_id: int) -> dict[str, Plan]:
        """The tenant's plans by lamp as last compiled (empty before the first compile)."""
        with self._lock:
            return self._compiled.get(tenant_id, {})

    def recompile(self, who: Principal) -> set[str]:
        """Compile the tenant's plans again (its lamps may have changed, the nights roll on)
        and tell the plan listeners which lamps' plans changed; those lamps."""
        with self._compiling(who.tenant_id):
            old = self.compiled(who.tenant_id)
            self.compile(who)
            touched = changed(old, self.compiled(who.tenant_id))
        if touched:
            for listener in self.plan_listeners:
                listener(who.tenant, touched)
        return touched

    def _plans_changed(self, who: Principal) -> None:
        """After a change: tell the listeners which lamps have a new plan."""
        if self.plan_listeners:
            self.recompile(who)

    # -- energy -----------------------------------------------------------------------------
    def settings(self, who: Principal) -> EnergySettings:
        """The tenant's tariff and grid emission factor."""
        return self.store.settings(who.tenant_id)

    def put_settings(self, who: Principal, body: Any) -> EnergySettings:
        """Set the tariff (``tariff``: ``Tariff.parse``'s document) and the grid factor
        (``grid``: ``kg_per_kwh``, ``source``); every problem located."""
        who.require(Role.OPERATOR)
        if not isinstance(body, dict):
            raise _bad([], "expected an object with tariff and grid")
        errors: list[dict[str, Any]] = []
        current = self.settings(who)
        tariff_body, grid = current.tariff_body, current.grid
        if "tariff" in body:
            try:
                raw = body["tariff"]
                Tariff.parse(raw if isinstance(raw, dict) else {})
                tariff_body = raw
            except InvalidInput as err:
                errors += [{**e, "loc": ["tariff", *e.get("loc", [])]} for e in err.errors]
        if "grid" in body:
            raw = body["grid"]
            factor = raw.get("kg_per_kwh") if isinstance(raw, dict) else None
            source = raw.get("source") if isinstance(raw, dict) else None
            if isinstance(factor, bool) or not isinstance(factor, int | float):
                errors.append({"loc": ["grid", "kg_per_kwh"], "msg": "must be a number"})
            if not isinstance(source, str) or not source.strip():
                errors.append({"loc": ["grid", "source"], "msg": "name the factor's source"})
            if not errors:
                try:
                    grid = GridFactor(float(factor), str(source))  # type: ignore[arg-type]
                except InvalidInput as err:
                    errors += [{**e, "loc": ["grid", *e["loc"]]} for e in err.errors]
        if errors:
            raise InvalidInput("; ".join(e["msg"] for e in errors), errors=errors)
        return self.store.put_settings(who.tenant_id, tariff_body, grid)

    def energy(
        self, who: Principal, group: str | None, start_ms: int, end_ms: int, by: By
    ) -> list[Savings]:
        """A group's (every lamp's without one) energy per ``by`` bucket in [start, end),
        against its baseline, priced and in CO2 with the tenant's settings."""
        if end_ms <= start_ms:
            raise _bad(["to"], "the period ends after it starts")
        records = self._lamps_of(who, group, None)
        zone = self.zone(who.tenant_id)
        settings = self.settings(who)
        ids = [r.device_id for r in records]
        read = metered(self.series, ids, start_ms, end_ms, zone, by) if ids else NOTHING
        places = [r.place for r in records]
        rows = savings(
            read.energy,
            places,
            start_ms,
            end_ms,
            zone,
            by,
            settings.tariff,
            settings.grid,
            "tenant",
            spans=read.spans,
        )
        name = group or "all"
        return [dataclasses.replace(row, group=name) for row in rows]

    def report(self, who: Principal, month: dt.date) -> str:
        """The tenant's month as CSV: a row per district, per road, and its total."""
        zone = self.zone(who.tenant_id)
        first = month.replace(day=1)
        after = (first + dt.timedelta(days=32)).replace(day=1)
        start = round(dt.datetime.combine(first, dt.time(), zone).timestamp() * 1000)
        end = round(dt.datetime.combine(after, dt.time(), zone).timestamp() * 1000)
        records = self.lamps(who)
        ids = [r.device_id for r in records]
        read = metered(self.series, ids, start, end, zone, "month") if ids else NOTHING
        settings = self.settings(who)
        places = [r.place for r in records]
        return monthly_report(
            read.energy, places, first, zone, settings.tariff, settings.grid, spans=read.spans
        )

    # -- burn hours and replacements --------------------------------------------------------
    def replacements(self, who: Principal, horizon_years: int = 10) -> list[RoadForecast]:
        """Each road's lamps against their rated life (L70): how many are past it, when the
        next is due, how many fall due each year up to ``horizon_years`` ahead. A lamp burns
        at the rate its ``hours`` grew over the last month (else the last day), or
        NIGHT_HOURS_PER_DAY when its readings cannot tell."""
        if not 1 <= horizon_years <= MAX_HORIZON_YEARS:
            raise _bad(["horizon_years"], f"horizon_years is from 1 to {MAX_HORIZON_YEARS}")
        records = self.lamps(who)
        now = self.clock()
        marks = [now - RATE_DAYS * DAY_MS, now - DAY_MS, now + 1]  # ascending: the store wants it
        ids = [r.device_id for r in records]
        floor = now - RATE_FLOOR_DAYS * DAY_MS
        found = self.series.values_before(ids, BURN_HOURS_KEY, marks, floor) if ids else {}
        lamps = []
        for r in records:
            month, day, latest = found.get(r.device_id, [None, None, None])
            rate = burn_rate(month, latest) or burn_rate(day, latest) or NIGHT_HOURS_PER_DAY
            cap = r.lamp.cap
            life = cap.rated_hours or DEFAULT_RATED_LIFE_H
            road, district = r.lamp.road, r.lamp.district
            lamps.append(BurnHours(r.device_id, road, district, cap.burn_hours, life, rate))
        today = self._today(who.tenant_id)
        return burn_hours_forecast(lamps, today=today, horizon_years=horizon_years)


def _part(part: str) -> str:
    if part not in PARTS:
        raise NotFound(f"no part {part!r}: one of {', '.join(PARTS)}", part=part)
    return part


def lighting_body_all(document: LightingDocument) -> Body:
    """A document as stored: every part present, in the shape ``parse_lighting`` reads."""
    body = lighting_body(document)
    return {part: list(body.get(part, [])) for part in PARTS}


def by_reason(reason: Reason) -> dict[str, str | None]:
    """A reason as plain data."""
    return {"program": reason.program, "entry": reason.entry, "override": reason.override}
