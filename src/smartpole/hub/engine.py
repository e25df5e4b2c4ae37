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

The evaluation itself is :class:`~smartpole.hub.evaluator.Evaluator`'s, run in the hub's task,
or with ``workers=1`` in a worker process (``hub/worker.py``) while the hub keeps the
authoritative copy of rule states and latest values and does all the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zoneinfo
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from smartpole.child import Child, ChildStatus
from smartpole.hub.actions import Actor, Commander, LampHolder, Transition
from smartpole.hub.alarms.outages import PoleOutages
from smartpole.hub.alarms.store import Alarms, ChangeListener
from smartpole.hub.alarms.stream import AlarmStream
from smartpole.hub.directory import DeviceInfo, Directory
from smartpole.hub.directory_load import load_directory
from smartpole.hub.evaluator import Evaluator, Outcome, RuleKey, State, compile_rules
from smartpole.hub.rules.conditions import ANY_KEY
from smartpole.hub.rules.model import AlarmAction, Rule
from smartpole.hub.rules.parser import compile_rule
from smartpole.hub.rules.store import RuleStore
from smartpole.hub.rules.tables import rule_state
from smartpole.hub.scopes import in_scope
from smartpole.hub.webhooks.store import Webhooks
from smartpole.hub.worker import (
    Batch,
    CheckRules,
    DirectoryUpdate,
    Message,
    Part,
    Reply,
    Seed,
    Tick,
    hub_worker,
)
from smartpole.hub.workorders.store import WorkOrders
from smartpole.metrics import Metrics
from smartpole.model.alarms import AlarmChange
from smartpole.model.clock import now_ms
from smartpole.model.lifecycle import Severity
from smartpole.model.rules import StoredRule
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.store.database import upsert
from smartpole.store.schema import poles, tenants
from smartpole.store.series import TimeSeries

__all__ = ["Hub"]

log = logging.getLogger(__name__)
DIRECTORY_REFRESH_S = 30.0
QUEUE_BATCHES = 64  # committed batches waiting for evaluation before ingest waits
WORKER_BATCHES = 16  # queued batches sent to a worker in one message at most
Queued = tuple[list[Reading], dict[int, int]]  # a committed batch's readings, devices heard


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
        workers: int = 0,
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
        self._rows: list[StoredRule] = []  # the rules as stored, as last loaded (for a worker)
        self._updated: dict[int, int] = {}
        self._needed: frozenset[str] = frozenset()
        self._version: tuple[int, int, int] | None = None
        # Rules, scopes, latest values, rule states: evaluated here, or only kept here (the
        # authoritative copy) while a worker process evaluates.
        self._evaluator = Evaluator(timezone)
        self._timezone = timezone
        self._dirty: set[RuleKey] = set()  # rule states to write
        self._worker: Child | None = None
        if workers > 0:
            self._worker = hub_worker(
                self._seed, self._take_reply, self.metrics.hub_worker_restarts.inc
            )
        # Bounded: when evaluation falls behind, the pipeline's writer waits here, so the
        # back-pressure reaches the devices instead of memory growing or readings going unseen.
        self._queue: asyncio.Queue[Queued] = asyncio.Queue(QUEUE_BATCHES)
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
        self._evaluator.seed_states(await asyncio.to_thread(self._load_state))
        await asyncio.to_thread(self._warm_values)
        await self.webhooks.start()
        await self.actor.start()
        self.started = now_ms()  # ready: the devices' sessions can only begin after this
        self._evaluator.started = self.started
        if self._worker is not None:
            await self._worker.start()
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
        if self._worker is not None:
            await self._worker.stop()

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
        queue = self._queue
        while True:
            batches = [await queue.get()]
            if self._worker is not None:  # what queued while the worker was busy goes at once
                while len(batches) < WORKER_BATCHES and not queue.empty():
                    batches.append(queue.get_nowait())
            try:
                unknown = await self._evaluate(batches)
                # A new device is looked up once; a deleted one does not reload every batch.
                if unknown - self._looked_up:
                    self._looked_up |= unknown
                    await self._refresh_directory()
                    again = [r for rs, _ in batches for r in rs if r.device_id in unknown]
                    await self._evaluate([(again, {})])
            except Exception:
                log.exception("hub evaluation failed")
            finally:
                done = time.monotonic()
                for _ in batches:
                    self.metrics.hub_delay.observe(done - self._queued_at.popleft())
                    queue.task_done()

    async def _evaluate(self, batches: list[Queued]) -> set[int]:
        """Evaluate batches here or in the worker, act on what changed; return the devices
        the directory does not know (yet)."""
        if self._worker is None:
            unknown: set[int] = set()
            for readings, seen in batches:
                outcome = self._evaluator.evaluate(readings, seen)
                self._act(outcome)
                unknown |= outcome.unknown
            return unknown
        reply = await self._worker.call(Batch([Part.of(rs, seen) for rs, seen in batches]))
        return reply.unknown if isinstance(reply, Outcome) else set()

    def _act(self, outcome: Outcome) -> None:
        """Hand the rules that started or stopped holding to the actor; note states to write."""
        rules, devices = self._rules, self.directory.devices
        for change in outcome.changes:
            rule, info = rules.get(change.rule_id), devices.get(change.device_id)
            if rule is not None and info is not None:
                shared = not change.holds and self._pole_holds(rule, info)
                self.actor.put(
                    Transition(rule, info, change.holds, change.now, change.values, shared)
                )
        self._dirty.update(outcome.states)
        self.evaluated += outcome.evaluated

    def _pole_holds(self, rule: Rule, info: DeviceInfo) -> bool:
        """Whether the rule holds for another device of the same owner on the device's pole
        (an alarm raised on the pole stays while one of them holds it)."""
        if info.pole_id is None:
            return False
        state, devices = self._evaluator.state, self.directory.devices
        for other in self.directory.on_pole.get(info.pole_id, ()):
            if other == info.id or (o := devices.get(other)) is None:
                continue
            if o.owner_id == info.owner_id and state.get((rule.id, other), {}).get("active"):
                return True
        return False

    def _take_reply(self, message: Message, reply: Reply) -> None:
        """The worker's answer applied to the authoritative copy, then acted on (called before
        another message can be sent, so a restarted worker is seeded with it)."""
        if isinstance(message, Batch):
            for part in message.parts:
                self._evaluator.remember(part.readings(), part.seen)
        if isinstance(reply, Outcome):
            self._evaluator.apply(reply)
            self._act(reply)

    def _seed(self) -> Seed:
        """What a (new) worker needs: the rules as stored and the authoritative copy."""
        e = self._evaluator
        return Seed(
            rules=self._rows,
            directory=self.directory,
            states=e.state,
            values=dict(e.values),
            before=dict(e.before),
            seen=e.seen,
            started=self.started,
            timezone=self._timezone,
        )

    def worker_status(self) -> ChildStatus | None:
        """The evaluation worker's process (``None``: rules are evaluated in this process)."""
        return None if self._worker is None else self._worker.status()

    async def tick(self, now: int | None = None) -> None:
        """The periodic work: rules changed elsewhere, timed rules, registry, rule state."""
        if await asyncio.to_thread(self.rules.version) != self._version:
            await self.reload()
        if time.monotonic() - self._loaded_at > DIRECTORY_REFRESH_S:
            await self._refresh_directory()
        now = now_ms() if now is None else now
        if self._worker is None:
            self._act(self._evaluator.check_timed(now))
        else:
            await self._worker.call(Tick(now))
        if self._dirty:
            await asyncio.to_thread(self._flush_state)

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
        another node) and rebuild the index; changed rules start their state afresh, and new
        or changed rules are checked at once on the latest values."""
        version = await asyncio.to_thread(self.rules.version)
        rows = await asyncio.to_thread(self.rules.all)
        await self._refresh_directory()  # a rule may name a tenant or pole created just now
        if self._worker is None:
            fresh = await self._take_rules(rows)
        else:
            async with self._worker.lock:  # no batch out while the states change
                fresh = await self._take_rules(rows)
                await self._worker.reseed()
        self._version = version
        if self.started and fresh:  # at start, the rules carry on from their stored state
            if self._worker is None:
                self._act(self._evaluator.check_rules(fresh))
            else:
                await self._worker.call(CheckRules(tuple(fresh)))

    async def _take_rules(self, rows: list[StoredRule]) -> list[int]:
        """Take the rules as stored; return the ids of those new or changed."""
        d = self.directory
        compiled = compile_rules(rows, d)
        before = self._rules
        fresh: list[int] = []
        for row in rows:
            if row.id not in compiled:
                continue
            if self._updated.get(row.id, row.updated) != row.updated:
                changed, _ = self._evaluator.forget(row.id, keep_active=True)
                self._dirty |= changed
                fresh.append(row.id)
            elif row.id not in self._rules:
                fresh.append(row.id)
            self._updated[row.id] = row.updated
        for gone in set(self._rules) - set(compiled):
            _, removed = self._evaluator.forget(gone, keep_active=False)
            self._dirty -= removed
        self._rows = rows
        self._rules = compiled
        needed = frozenset(k for rule in compiled.values() for k in rule.keys)
        added, self._needed = needed - self._needed, needed
        self._evaluator.load_rules(compiled)
        self.actor.directory = d
        for rule_id in fresh:
            if (old := before.get(rule_id)) is not None:
                self._release_stranded(old, compiled[rule_id])
        if self.started and added:  # values were kept only for the keys the old rules read
            await asyncio.to_thread(self._warm_values, added)
        return fresh

    def _release_stranded(self, old: Rule, new: Rule) -> None:
        """A replaced rule whose alarm changed type or originator: where it holds, the old
        version's alarm is cleared (its holds ended) and the new version's raised at once, the
        rule still holding; the new version would never clear the old alarm. Anything else
        (severity, commands, the condition, the scope) the new version takes over as is."""
        if _alarms_of(new) == _alarms_of(old):
            return
        devices, evaluator, now = self.directory.devices, self._evaluator, now_ms()
        for key in [k for k, s in evaluator.state.items() if k[0] == old.id and s.get("active")]:
            info = devices.get(key[1])
            if info is None:
                continue  # a deleted device: its alarms went with it
            self.actor.put(Transition(old, info, False, now, {}, False))
            if in_scope(new, info, self.directory.pole_of(info)):
                latest = evaluator.values.get(info.id, {})
                values = {k: latest[k][1] for k in new.keys if k in latest}
                self.actor.put(Transition(new, info, True, now, values))
            else:
                evaluator.state[key] = {"active": False}
                self._dirty.add(key)

    async def _refresh_directory(self) -> None:
        self.directory = await asyncio.to_thread(load_directory, self.engine)
        self.actor.directory = self.directory
        self._evaluator.set_directory(self.directory)
        self._loaded_at = time.monotonic()
        if self._worker is not None and self._worker.running:
            await self._worker.call(DirectoryUpdate(self.directory))

    # -- state -------------------------------------------------------------------------------
    def _load_state(self) -> dict[RuleKey, State]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rule_state.c.rule_id, rule_state.c.device_id, rule_state.c.state)
            )
            return {(r, d): orjson.loads(s) for r, d, s in rows if r in self._rules}

    def _warm_values(self, wanted: Iterable[str] | None = None) -> None:
        """Read the latest values of the keys rules use (or of ``wanted``), and the values
        before them (what a late reading's time saw): at start, so that durations and
        combinations carry on after a restart instead of waiting for every key again, and for
        the keys new rules read."""
        keys = sorted(k for k in (self._needed if wanted is None else wanted) if k != ANY_KEY)
        if self.series is None or not keys:
            return
        ids = sorted(self.directory.devices)
        evaluator = self._evaluator
        for i in range(0, len(ids), 5000):
            chunk = ids[i : i + 5000]
            previous = self.series.previous(chunk, keys)
            for device_id, values in self.series.latest(chunk, keys).items():
                evaluator.values[device_id].update(values)
                before, prior = evaluator.before[device_id], previous.get(device_id, {})
                for key in values:  # what it held of a key no rule read for a while is stale
                    if key in prior:
                        before[key] = prior[key]
                    else:
                        before.pop(key, None)

    def _flush_state(self) -> None:
        """Write the changed rule states. States that could not be written stay to write at
        the next flush; one of a rule deleted meanwhile (by another node, or before this node
        reloaded) is dropped without taking the others with it."""
        dirty, self._dirty = self._dirty, set()
        rows = [
            {"rule_id": r, "device_id": d, "state": orjson.dumps(s).decode(), "updated": now_ms()}
            for (r, d) in dirty
            if r in self._rules and (s := self._evaluator.state.get((r, d))) is not None
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


def _alarms_of(rule: Rule) -> set[tuple[str, str]]:
    """The (type, originator) of each alarm a rule raises: an alarm's identity."""
    return {(a.type, a.originator) for a in rule.actions if isinstance(a, AlarmAction)}
