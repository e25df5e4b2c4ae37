"""The hub engine: evaluates rules on every committed batch and on a timer.

The pipeline calls :meth:`Hub.on_batch` after each commit, inside its writer task, so that call
only keeps the readings some rule reads (a set lookup per reading) and queues them. The hub's
own task evaluates: each device's rules come from the scope index (``hub/scopes.py``: the
rules whose scope holds it, by the key that wakes them, computed once per device); a device's
readings are taken in timestamp order, and at each of their times the rules their keys wake
are checked against the device's values as of then (so a burst or a late batch is seen as it
happened); a rule that starts or stops holding becomes a
:class:`~smartpole.hub.actions.Transition` for the actor.
A timer evaluates the rules that time alone can change (``for``, missing data, time windows),
writes changed rule state (so durations survive a restart) and picks up rules changed by
another process.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zoneinfo
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from smartpole.hub.actions import Actor, Commander, LampHolder, Transition
from smartpole.hub.alarms.outages import PoleOutages
from smartpole.hub.alarms.store import Alarms, ChangeListener
from smartpole.hub.alarms.stream import AlarmStream
from smartpole.hub.directory import DeviceInfo, Directory
from smartpole.hub.rules.conditions import ANY_KEY, Context, waits
from smartpole.hub.rules.model import Rule
from smartpole.hub.rules.parser import compile_rule
from smartpole.hub.rules.store import RuleStore
from smartpole.hub.rules.tables import rule_state
from smartpole.hub.scopes import ScopeIndex
from smartpole.hub.webhooks.store import Webhooks
from smartpole.hub.workorders.store import WorkOrders
from smartpole.metrics import Metrics
from smartpole.model.alarms import AlarmChange
from smartpole.model.clock import now_ms
from smartpole.model.lifecycle import Severity
from smartpole.model.types import Reading, Value
from smartpole.model.writes import WriteBatch
from smartpole.store.database import upsert
from smartpole.store.schema import poles, tenants
from smartpole.store.series import TimeSeries

__all__ = ["Hub"]

log = logging.getLogger(__name__)
DIRECTORY_REFRESH_S = 30.0
QUEUE_BATCHES = 64  # committed batches waiting for evaluation before ingest waits
Latest = dict[str, tuple[int, Value]]


def _ts(r: Reading) -> int:
    return r.ts


class Hub:
    """Rules, their state and evaluation; the alarms, work orders and webhooks it acts through.

    ``work_order_sla`` is the deadline of each severity (default: ``DEFAULT_SLA``);
    ``alarm_listeners`` are told every alarm change after the hub's own.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        commander: Commander | None = None,
        series: TimeSeries | None = None,
        work_order_sla: Mapping[Severity, int] | None = None,
        timezone: str = "Asia/Shanghai",
        webhook_attempts: int = 5,
        webhook_backoff_ms: int = 1000,
        metrics: Metrics | None = None,
        alarm_listeners: Iterable[ChangeListener] = (),
        lamps: LampHolder | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics if metrics is not None else Metrics()
        self.series = series
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.stream = AlarmStream()
        # Outages and work orders raise alarms and listen to them too: the alarms, built
        # first, tell them through the hub's two methods below.
        listeners = (
            self.stream.publish,
            self._group_outage,
            self._suggest_resolve,
            *alarm_listeners,  # the platform's others: the map's pole states, the live socket
        )
        self.alarms = Alarms(engine, listeners)
        self.outages = PoleOutages(self.alarms)  # a dark pole: one root alarm, not six
        self.work_orders = WorkOrders(engine, self.alarms, sla=work_order_sla)
        self.webhooks = Webhooks(engine, attempts=webhook_attempts, backoff_ms=webhook_backoff_ms)
        self.rules = RuleStore(engine, self.check)
        self.actor = Actor(self.alarms, commander, self.webhooks, self.work_orders, lamps=lamps)
        self.directory = Directory()
        self.evaluated = 0  # rule evaluations, for the benchmark and the status page
        self.started = 0  # when start() was done (ms): offline durations count from then at most
        self._rules: dict[int, Rule] = {}
        self._updated: dict[int, int] = {}
        self._needed: frozenset[str] = frozenset()
        self._version: tuple[int, int, int] | None = None
        self._values: dict[int, Latest] = defaultdict(dict)
        self._seen: dict[int, int] = {}
        self._state: dict[tuple[int, int], dict[str, Any]] = {}
        self._dirty: set[tuple[int, int]] = set()
        # (rule, device) pairs of timed rules that time alone may change now (a ``for``
        # counting, a ``hold`` running out): the timer checks only these, and clocked rules
        self._waiting: set[tuple[int, int]] = set()
        self._scopes = ScopeIndex((), self.directory)
        # Bounded: when evaluation falls behind, the pipeline's writer waits here, so the
        # back-pressure reaches the devices instead of memory growing or readings going unseen.
        self._queue: asyncio.Queue[tuple[list[Reading], dict[int, int]]] = asyncio.Queue(
            QUEUE_BATCHES
        )
        self._task: asyncio.Task[None] | None = None
        self._queued_at: deque[float] = deque()  # when each queued batch arrived, in order
        self._loaded_at = 0.0
        self._looked_up: set[int] = set()
        self._insert = upsert(engine)

    async def _group_outage(self, change: AlarmChange) -> None:
        """A dark pole's device alarms grouped under one root (an alarm listener)."""
        await self.outages.on_alarm_change(change)

    async def _suggest_resolve(self, change: AlarmChange) -> None:
        """A cleared alarm's work orders marked ``resolve_suggested`` (an alarm listener)."""
        await self.work_orders.on_alarm_change(change)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the registry, rules and rule state; start evaluation, actions and webhooks."""
        await self.reload()
        self._state = await asyncio.to_thread(self._load_state)
        self._waiting = {
            key
            for key, state in self._state.items()
            if (rule := self._rules.get(key[0])) is not None
            and rule.timed
            and waits(rule.condition, state)
        }
        await asyncio.to_thread(self._warm_values)
        await self.webhooks.start()
        await self.actor.start()
        self.started = now_ms()  # ready: the devices' sessions can only begin after this
        self._task = asyncio.create_task(self._run(), name="hub-evaluation")

    async def stop(self) -> None:
        """Evaluate what is queued, finish the actions, write the state, stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        await self.actor.stop()
        await self.webhooks.stop()
        await asyncio.to_thread(self._flush_state)

    async def settle(self) -> None:
        """Wait until every queued batch is evaluated and acted on (tests, benchmarks)."""
        await self._queue.join()
        await self.actor.drain()

    # -- the pipeline listener -----------------------------------------------------------------
    @property
    def queued(self) -> int:
        """Committed batches waiting for rule evaluation."""
        return self._queue.qsize()

    @property
    def lag(self) -> float:
        """Seconds since the oldest batch still waiting for evaluation was committed (0: none)."""
        return time.monotonic() - self._queued_at[0] if self._queued_at else 0.0

    async def on_batch(self, batch: WriteBatch) -> None:
        """Keep the readings that some rule reads and queue them; waits only when the hub is
        ``QUEUE_BATCHES`` batches behind."""
        if not self._rules:
            return
        needed = self._needed
        if ANY_KEY in needed:
            keep = batch.readings
        else:
            keep = [r for r in batch.readings if r.key in needed]
        if keep:
            self._queued_at.append(time.monotonic())  # before the wait: lag includes it
            try:
                await self._queue.put((keep, dict(batch.seen)))
            except BaseException:
                self._queued_at.pop()  # never queued (cancelled at shutdown)
                raise

    async def _run(self) -> None:
        while True:
            readings, seen = await self._queue.get()
            try:
                unknown = self.evaluate(readings, seen)
                # A new device is looked up once; a deleted one does not reload every batch.
                if unknown - self._looked_up:
                    self._looked_up |= unknown
                    await self._refresh_directory()
                    self.evaluate([r for r in readings if r.device_id in unknown], {})
            except Exception:
                log.exception("hub evaluation failed")
            finally:
                self.metrics.hub_delay.observe(time.monotonic() - self._queued_at.popleft())
                self._queue.task_done()

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, readings: list[Reading], seen: dict[int, int]) -> set[int]:
        """Update latest values and check the rules the readings concern, reading by reading
        in timestamp order per device; return the ids of devices the directory does not know
        (yet).

        Each distinct timestamp of a device is one step: its readings update the latest
        values, then the rules woken by their keys are checked at that time. So a press that
        a late batch carries between two releases is seen, and durations count from the
        readings' own times. A reading older than the latest of its key (it arrived after a
        newer one) is replayed over the latest values for the stateless rules it wakes that do
        not hold now, then those rules are checked again against the latest values.
        """
        for device_id, ts in seen.items():
            if ts > self._seen.get(device_id, 0):
                self._seen[device_id] = ts
        by_device: dict[int, list[Reading]] = defaultdict(list)
        for r in readings:
            by_device[r.device_id].append(r)
        unknown = set()
        devices = self.directory.devices
        for device_id, rs in by_device.items():
            info = devices.get(device_id)
            if info is None:
                unknown.add(device_id)
                continue
            mine = self._scopes.rules_of(info)
            if len(rs) > 1:
                rs.sort(key=_ts)  # stable: readings of one time keep their order
            self._evaluate_device(info, rs, mine)
        return unknown

    def _evaluate_device(
        self, info: DeviceInfo, rs: list[Reading], mine: dict[str, list[Rule]]
    ) -> None:
        """One device's readings, already in timestamp order, step by step."""
        latest = self._values[info.id]
        n = len(rs)
        i = 0
        while i < n:
            ts = rs[i].ts
            keys: set[str] = set()
            late: list[Reading] = []
            while i < n and rs[i].ts == ts:
                r = rs[i]
                old = latest.get(r.key)
                if old is None or ts >= old[0]:
                    latest[r.key] = (ts, r.value)
                    keys.add(r.key)
                else:
                    late.append(r)
                i += 1
            if late:
                self._replay(info, late, mine)
            if keys:
                woken = self._woken(mine, keys)
                if woken:
                    ctx = self._context(info, ts)
                    for rule in woken:
                        self._check(rule, info, ctx)

    def _replay(self, info: DeviceInfo, late: list[Reading], mine: dict[str, list[Rule]]) -> None:
        """Check the stateless rules that late readings wake and that do not hold now, as of the
        readings' time, then again on the latest values (a press reported after its release
        still raises, then clears).

        Rules with durations, rates or missing data are left to the latest values: their
        state counts forward in time, and a reading from its past would restart it.
        """
        latest = self._values[info.id]
        ts = late[0].ts
        then = dict(latest)
        for r in late:
            then[r.key] = (r.ts, r.value)
        # Only rules not holding now: a late reading can show an event that was missed, but
        # must not clear and raise again an alarm that stands.
        woken = [
            r
            for r in self._woken(mine, {r.key for r in late})
            if not r.stateful and not self._state.get((r.id, info.id), {}).get("active")
        ]
        if not woken:
            return
        ctx = self._context(info, ts, then)
        for rule in woken:
            self._check(rule, info, ctx)
        ctx = self._context(info, max(v[0] for v in latest.values()))
        for rule in woken:
            self._check(rule, info, ctx)

    @staticmethod
    def _woken(mine: dict[str, list[Rule]], keys: set[str]) -> list[Rule]:
        """The device's rules that readings of these keys wake (each once)."""
        if len(keys) == 1 and ANY_KEY not in mine:  # the common case: no merging needed
            return mine.get(next(iter(keys)), [])
        candidates: dict[int, Rule] = {}
        for key in (*keys, ANY_KEY):
            for rule in mine.get(key, ()):
                candidates[rule.id] = rule
        return list(candidates.values())

    def _context(self, info: DeviceInfo, now: int, view: Latest | None = None) -> Context:
        """What the device's rules see at ``now``: its values (or ``view``), its pole; built
        once per device and time, and handed to each rule with the rule's own state."""
        pole = self.directory.pole_of(info)
        # heard here (this process's batches), or by any node (the store, as of the last load)
        seen = max(self._seen.get(info.id, 0), self.directory.last_seen.get(info.id, 0))
        return Context(
            values=self._values.get(info.id, {}) if view is None else view,
            now=now,
            state={},
            seen=seen or None,
            lat=None if pole is None else pole.lat,
            lon=None if pole is None else pole.lon,
            tz=self.tz,
            started=self.started,
        )

    def _check(self, rule: Rule, info: DeviceInfo, ctx: Context) -> None:
        key = (rule.id, info.id)
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = {"active": False}
        before = orjson.dumps(state) if rule.stateful else b""
        ctx.state = state
        ctx.holding = state["active"]
        self.evaluated += 1
        holds = rule.condition.test(ctx)
        if rule.timed and not rule.clocked:
            if waits(rule.condition, state):
                self._waiting.add(key)
            else:
                self._waiting.discard(key)
        if holds != state["active"]:
            state["active"] = holds
            latest = ctx.values
            values = {k: latest[k][1] for k in rule.keys if k in latest}
            self.actor.put(Transition(rule, info, holds, ctx.now, values))
            self._dirty.add(key)
        elif rule.stateful and orjson.dumps(state) != before:
            self._dirty.add(key)

    async def tick(self, now: int | None = None) -> None:
        """The periodic work: rules changed elsewhere, timed rules, registry, rule state."""
        if await asyncio.to_thread(self.rules.version) != self._version:
            await self.reload()
        if time.monotonic() - self._loaded_at > DIRECTORY_REFRESH_S:
            await self._refresh_directory()
        self.check_timed(now_ms() if now is None else now)
        if self._dirty:
            await asyncio.to_thread(self._flush_state)

    def check_timed(self, now: int) -> None:
        """Evaluate the rules that time alone can change: clocked ones (missing data, presence,
        windows) for every device in their scope, the others where a duration is counting."""
        contexts: dict[int, Context] = {}
        waiting = self._waiting
        for rule, members in self._scopes.timed():
            clocked, rule_id = rule.clocked, rule.id
            for info in members:
                if not clocked and (rule_id, info.id) not in waiting:
                    continue  # nothing counting: only a reading can change it
                ctx = contexts.get(info.id)
                if ctx is None:
                    ctx = contexts[info.id] = self._context(info, now)
                self._check(rule, info, ctx)

    # -- rules -------------------------------------------------------------------------------
    def check(self, tenant_id: int, is_operator: bool, body: dict[str, Any]) -> Rule:
        """Compile a rule body for a tenant against the registry as it is now."""

        def tenant(name: str) -> int | None:
            q = select(tenants.c.id).where(tenants.c.name == name)
            with self.engine.connect() as conn:
                return conn.execute(q).scalar()

        def pole(code: str) -> int | None:
            with self.engine.connect() as conn:
                return conn.execute(select(poles.c.id).where(poles.c.code == code)).scalar()

        return compile_rule(
            body,
            tenant_id=tenant_id,
            city_wide=is_operator,
            tenant_lookup=tenant,
            pole_lookup=pole,
            webhook_exists=lambda name: self.webhooks.exists(tenant_id, name),
        )

    async def reload(self) -> None:
        """Recompile every rule from the store (after a change through the API, CLI or
        another node) and rebuild the index; changed rules start their state afresh."""
        version = await asyncio.to_thread(self.rules.version)
        rows = await asyncio.to_thread(self.rules.all)
        await self._refresh_directory()  # a rule may name a tenant or pole created just now
        d = self.directory
        compiled: dict[int, Rule] = {}
        fresh: list[int] = []  # rules new or changed: checked against the values there are
        for row in rows:
            if not row.enabled:
                continue
            try:
                compiled[row.id] = compile_rule(
                    row.body,
                    rule_id=row.id,
                    tenant_id=row.tenant_id,
                    city_wide=row.tenant_id in d.operators,
                    tenant_lookup=d.tenant_ids.get,
                    pole_lookup=d.pole_codes.get,
                    webhook_exists=lambda _: True,  # a deleted webhook only skips deliveries
                )
            except Exception as err:
                log.warning("rule %s (%r) is skipped: %s", row.id, row.name, err)
                continue
            if self._updated.get(row.id, row.updated) != row.updated:
                self._forget(row.id, keep_active=True)
                fresh.append(row.id)
            elif row.id not in self._rules:
                fresh.append(row.id)
            self._updated[row.id] = row.updated
        for gone in set(self._rules) - set(compiled):
            self._forget(gone, keep_active=False)
        needed = frozenset(k for rule in compiled.values() for k in rule.keys)
        added, self._needed = needed - self._needed, needed
        self._rules = compiled
        self._scopes = ScopeIndex(compiled.values(), d)
        self._version = version
        self.actor.directory = d
        if self.started:  # at start, the rules carry on from their stored state instead
            if added:  # values kept until now only for the keys the old rules read
                await asyncio.to_thread(self._warm_values, added)
            self._check_fresh([compiled[i] for i in fresh if i in compiled])

    def _check_fresh(self, fresh: list[Rule]) -> None:
        """Check new and changed rules on every device's latest values, as of the latest of the
        keys each reads: a rule added while its condition holds raises now, not at the next
        reading of its key."""
        if not fresh:
            return
        ids = {rule.id for rule in fresh}
        devices = self.directory.devices
        for device_id, latest in list(self._values.items()):
            info = devices.get(device_id)
            if info is None or not latest:
                continue
            for rule in self._woken(self._scopes.rules_of(info), set(latest)):
                if rule.id not in ids:
                    continue
                times = [latest[k][0] for k in rule.keys if k in latest]
                if times:
                    self._check(rule, info, self._context(info, max(times)))

    def _forget(self, rule_id: int, *, keep_active: bool) -> None:
        for key in [k for k in self._state if k[0] == rule_id]:
            self._waiting.discard(key)
            if keep_active:
                self._state[key] = {"active": self._state[key].get("active", False)}
                self._dirty.add(key)
            else:
                del self._state[key]
                self._dirty.discard(key)

    async def _refresh_directory(self) -> None:
        self.directory = await asyncio.to_thread(Directory.load, self.engine)
        self.actor.directory = self.directory
        self._scopes.with_directory(self.directory)
        self._loaded_at = time.monotonic()

    # -- state -------------------------------------------------------------------------------
    def _load_state(self) -> dict[tuple[int, int], dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rule_state.c.rule_id, rule_state.c.device_id, rule_state.c.state)
            )
            return {(r, d): orjson.loads(s) for r, d, s in rows if r in self._rules}

    def _warm_values(self, wanted: Iterable[str] | None = None) -> None:
        """Read the latest values of the keys rules use (or of ``wanted``): at start, so that
        durations and combinations carry on after a restart instead of waiting for every key
        again, and for the keys new rules read."""
        keys = sorted(k for k in (self._needed if wanted is None else wanted) if k != ANY_KEY)
        if self.series is None or not keys:
            return
        ids = sorted(self.directory.devices)
        for i in range(0, len(ids), 5000):
            for device_id, values in self.series.latest(ids[i : i + 5000], keys).items():
                self._values[device_id].update(values)

    def _flush_state(self) -> None:
        """Write the changed rule states. States that could not be written stay to write at
        the next flush; one of a rule deleted meanwhile (by another node, or before this node
        reloaded) is dropped without taking the others with it."""
        dirty, self._dirty = self._dirty, set()
        rows = [
            {"rule_id": r, "device_id": d, "state": orjson.dumps(s).decode(), "updated": now_ms()}
            for (r, d) in dirty
            if r in self._rules and (s := self._state.get((r, d))) is not None
        ]
        if not rows:
            return
        stmt = self._insert(rule_state)
        stmt = stmt.on_conflict_do_update(
            index_elements=["rule_id", "device_id"],
            set_={"state": stmt.excluded.state, "updated": stmt.excluded.updated},
        )
        try:
            with self.engine.begin() as conn:
                for i in range(0, len(rows), 500):
                    conn.execute(stmt, rows[i : i + 500])
        except IntegrityError:  # a rule gone: the others one by one
            self._write_each(stmt, rows)
        except Exception:
            self._dirty |= dirty  # written at the next flush
            raise

    def _write_each(self, stmt: Any, rows: list[dict[str, Any]]) -> None:
        for n, row in enumerate(rows):
            try:
                with self.engine.begin() as conn:
                    conn.execute(stmt, row)
            except IntegrityError:
                log.info("state of deleted rule %s is dropped", row["rule_id"])
            except Exception:
                self._dirty |= {(int(r["rule_id"]), int(r["device_id"])) for r in rows[n:]}
                raise

    def active_rules(self) -> int:
        """How many enabled rules are being evaluated."""
        return len(self._rules)
