"""Rule evaluation without I/O: the part of the hub that can run in a process of its own.

An :class:`Evaluator` holds the compiled rules, the scope index, each device's latest values
and each (rule, device) state. :meth:`Evaluator.evaluate` takes a committed batch's readings and
:meth:`Evaluator.check_timed` a moment; both return an :class:`Outcome`: the (rule, device)
pairs that started or stopped holding, with the values that made them, and the rule states
that changed. Raising alarms, running actions and writing the states are the hub's
(``hub/engine.py``); the evaluator runs in the hub's task, or in a worker process
(``hub/worker.py``) while the hub keeps the authoritative copy of its states and values.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from smartpole.hub.directory import DeviceInfo, Directory
from smartpole.hub.rules.conditions import Context, compile_waits
from smartpole.hub.rules.model import Rule
from smartpole.hub.rules.parser import compile_rule
from smartpole.hub.scopes import ScopeIndex
from smartpole.model.columns import Sample
from smartpole.model.rules import StoredRule
from smartpole.model.types import Value

__all__ = [
    "Change",
    "Evaluator",
    "Latest",
    "Outcome",
    "RuleKey",
    "State",
    "compile_rules",
]

log = logging.getLogger(__name__)
Latest = dict[str, tuple[int, Value]]
RuleKey = tuple[int, int]  # (rule id, device id)
State = dict[str, Any]  # a rule's state for one device: {"active": bool, ...its nodes' own}


@dataclass(frozen=True, slots=True)
class Change:
    """A rule that started (``holds``) or stopped holding for a device at ``now``."""

    rule_id: int
    device_id: int
    holds: bool
    now: int
    values: dict[str, Value]


@dataclass(slots=True)
class Outcome:
    """What one evaluation changed: holding rules, rule states, unknown devices."""

    changes: list[Change] = field(default_factory=list)
    states: dict[RuleKey, State] = field(default_factory=dict)  # as they are now
    unknown: set[int] = field(default_factory=set)  # devices the directory does not know
    evaluated: int = 0  # rule checks made

    def add(self, later: Outcome) -> None:
        """Take a later evaluation's outcome into this one."""
        self.changes += later.changes
        self.states.update(later.states)
        self.unknown |= later.unknown
        self.evaluated += later.evaluated


def _keep(latest: Latest, before: Latest, key: str, ts: int, value: Value) -> bool:
    """Take a reading into a device's latest values and the values before them (per key, the
    newest older than the latest); whether it is the key's latest (a late one is not)."""
    old = latest.get(key)
    if old is None or ts >= old[0]:
        if old is not None and old[0] < ts:
            before[key] = old
        latest[key] = (ts, value)
        return True
    prior = before.get(key)
    if prior is None or ts >= prior[0]:
        before[key] = (ts, value)
    return False


def _ts(r: Sample) -> int:
    return r.ts


def compile_rules(rows: Iterable[StoredRule], directory: Directory) -> dict[int, Rule]:
    """Every enabled rule compiled against the registry; one that fails is logged and skipped."""
    compiled: dict[int, Rule] = {}
    for row in rows:
        if not row.enabled:
            continue
        try:
            compiled[row.id] = compile_rule(
                row.body,
                rule_id=row.id,
                tenant_id=row.tenant_id,
                city_wide=row.tenant_id in directory.operators,
                tenant_lookup=directory.tenant_ids.get,
                pole_lookup=directory.pole_codes.get,
                webhook_exists=lambda _: True,  # a deleted webhook only skips deliveries
            )
        except Exception as err:
            log.warning("rule %s (%r) is skipped: %s", row.id, row.name, err)
    return compiled


class Evaluator:
    """Rules, scopes, latest values and rule states; evaluates readings and time."""

    def __init__(self, timezone: str = "Asia/Shanghai") -> None:
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.rules: dict[int, Rule] = {}
        self.directory = Directory()
        self.scopes = ScopeIndex((), self.directory)
        self.values: dict[int, Latest] = defaultdict(dict)
        # per key, the newest value older than the latest: what a late reading's time saw
        self.before: dict[int, Latest] = defaultdict(dict)
        self.seen: dict[int, int] = {}
        self.state: dict[RuleKey, State] = {}
        # (rule, device) pairs of timed rules that time alone may change now (a ``for``
        # counting, a ``hold`` running out): the timer checks only these, and clocked rules
        self.waiting: set[RuleKey] = set()
        self.started = 0  # when the hub was ready (ms): offline durations count from then
        self._outcome = Outcome()
        self._waits: dict[int, Callable[[State], bool]] = {}  # rule id -> compile_waits()

    # -- what it holds ---------------------------------------------------------------------
    def load_rules(self, rules: dict[int, Rule]) -> None:
        """Take a new set of compiled rules (states of removed rules are the caller's)."""
        self.rules = rules
        self.scopes = ScopeIndex(rules.values(), self.directory)
        self._waits = {rule.id: compile_waits(rule.condition) for rule in rules.values()}

    def set_directory(self, directory: Directory) -> None:
        """Take a newly loaded registry."""
        self.directory = directory
        self.scopes.with_directory(directory)

    def seed_states(self, states: dict[RuleKey, State]) -> None:
        """Take the rule states (as loaded or kept elsewhere); durations go on counting."""
        self.state = states
        self.waiting = {
            key
            for key, state in states.items()
            if (rule := self.rules.get(key[0])) is not None
            and rule.timed
            and self._waits[rule.id](state)
        }

    def seed_values(
        self, values: Mapping[int, Latest], before: Mapping[int, Latest], seen: Mapping[int, int]
    ) -> None:
        """Take latest values, the values before them and last-heard times (as warmed from the
        store or kept)."""
        self.values = defaultdict(dict, {d: dict(v) for d, v in values.items()})
        self.before = defaultdict(dict, {d: dict(v) for d, v in before.items()})
        self.seen = dict(seen)

    def remember(self, readings: Iterable[Sample], seen: Mapping[int, int]) -> None:
        """Update latest values and last-heard times without evaluating (the hub's copy while
        a worker evaluates)."""
        self._take_seen(seen)
        values, before = self.values, self.before
        for r in readings:
            _keep(values[r.device_id], before[r.device_id], r.key, r.ts, r.value)

    def apply(self, outcome: Outcome) -> None:
        """Take the rule states another evaluator changed (those of rules still loaded)."""
        rules = self.rules
        for key, state in outcome.states.items():
            if key[0] in rules:
                self.state[key] = state

    def forget(self, rule_id: int, *, keep_active: bool) -> tuple[set[RuleKey], set[RuleKey]]:
        """Drop a changed (``keep_active``: only whether it holds stays) or removed rule's
        states; return the keys whose state changed and those removed."""
        changed: set[RuleKey] = set()
        removed: set[RuleKey] = set()
        for key in [k for k in self.state if k[0] == rule_id]:
            self.waiting.discard(key)
            if keep_active:
                self.state[key] = {"active": self.state[key].get("active", False)}
                changed.add(key)
            else:
                del self.state[key]
                removed.add(key)
        return changed, removed

    def _take_seen(self, seen: Mapping[int, int]) -> None:
        mine = self.seen
        for device_id, ts in seen.items():
            if ts > mine.get(device_id, 0):
                mine[device_id] = ts

    def _done(self) -> Outcome:
        out, self._outcome = self._outcome, Outcome()
        state = self.state
        out.states = {key: state[key] for key in out.states}
        return out

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, readings: Sequence[Sample], seen: Mapping[int, int]) -> Outcome:
        """Update latest values and check the rules the readings concern, reading by reading
        in timestamp order per device; ``unknown`` are the devices the directory does not
        know (yet).

        Each distinct timestamp of a device is one step: its readings update the latest
        values, then the rules woken by their keys are checked at that time. So a press that
        a late batch carries between two releases is seen, and durations count from the
        readings' own times. A reading older than the latest of its key (it arrived after a
        newer one) is replayed over the latest values for the stateless rules it wakes that do
        not hold now, then those rules are checked again against the latest values.
        """
        self._take_seen(seen)
        by_device: dict[int, list[Sample]] = defaultdict(list)
        for r in readings:
            by_device[r.device_id].append(r)
        unknown = self._outcome.unknown
        devices = self.directory.devices
        for device_id, rs in by_device.items():
            info = devices.get(device_id)
            if info is None:
                unknown.add(device_id)
                continue
            mine = self.scopes.rules_of(info)
            if len(rs) > 1:
                rs.sort(key=_ts)  # stable: readings of one time keep their order
            self._evaluate_device(info, rs, mine)
        return self._done()

    def _evaluate_device(
        self, info: DeviceInfo, rs: list[Sample], mine: dict[str, list[Rule]]
    ) -> None:
        """One device's readings, already in timestamp order, step by step."""
        latest = self.values[info.id]
        before = self.before[info.id]
        n = len(rs)
        i = 0
        while i < n:
            ts = rs[i].ts
            keys: set[str] = set()
            late: list[Sample] = []
            while i < n and rs[i].ts == ts:
                r = rs[i]
                if _keep(latest, before, r.key, ts, r.value):
                    keys.add(r.key)
                else:
                    late.append(r)
                i += 1
            if late:
                self._replay(info, late, mine)
            if keys:
                woken = self.scopes.woken(mine, keys)
                if woken:
                    ctx = self._context(info, ts)
                    for rule in woken:
                        self._check(rule, info, ctx)

    def _replay(self, info: DeviceInfo, late: list[Sample], mine: dict[str, list[Rule]]) -> None:
        """Check the stateless rules that late readings wake and that do not hold now, as of the
        readings' time, then again on the latest values (a press reported after its release
        still raises, then clears).

        The other keys are taken as of that time: the latest value if it is not newer, else
        the newest one older than it if that is not newer; a key with neither is unknown then
        (it changed twice since: only the value before the latest is kept).

        Rules with durations, rates or missing data are left to the latest values: their
        state counts forward in time, and a reading from its past would restart it.
        """
        latest = self.values[info.id]
        ts = late[0].ts
        previous = self.before.get(info.id, {})
        then: Latest = {}
        for key, value in latest.items():
            if value[0] <= ts:
                then[key] = value
            elif (old := previous.get(key)) is not None and old[0] <= ts:
                then[key] = old
        for r in late:
            then[r.key] = (r.ts, r.value)
        # Only rules not holding now: a late reading can show an event that was missed, but
        # must not clear and raise again an alarm that stands.
        woken = [
            r
            for r in self.scopes.woken(mine, {r.key for r in late})
            if not r.stateful and not self.state.get((r.id, info.id), {}).get("active")
        ]
        if not woken:
            return
        ctx = self._context(info, ts, then)
        for rule in woken:
            self._check(rule, info, ctx)
        ctx = self._context(info, max(v[0] for v in latest.values()))
        for rule in woken:
            self._check(rule, info, ctx)

    def _context(self, info: DeviceInfo, now: int, view: Latest | None = None) -> Context:
        """What the device's rules see at ``now``: its values (or ``view``), its pole; built
        once per device and time, and handed to each rule with the rule's own state."""
        pole = self.directory.pole_of(info)
        # heard here (this process's batches), or by any node (the store, as of the last load)
        seen = max(self.seen.get(info.id, 0), self.directory.last_seen.get(info.id, 0))
        return Context(
            values=self.values.get(info.id, {}) if view is None else view,
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
        state = self.state.get(key)
        if state is None:
            state = self.state[key] = {"active": False}
        before = orjson.dumps(state) if rule.stateful else b""
        ctx.state = state
        ctx.holding = state["active"]
        out = self._outcome
        out.evaluated += 1
        holds = rule.condition.test(ctx)
        if rule.timed and not rule.clocked:
            if self._waits[rule.id](state):
                self.waiting.add(key)
            else:
                self.waiting.discard(key)
        if holds != state["active"]:
            state["active"] = holds
            latest = ctx.values
            values = {k: latest[k][1] for k in rule.keys if k in latest}
            out.changes.append(Change(rule.id, info.id, holds, ctx.now, values))
            out.states[key] = state
        elif rule.stateful and orjson.dumps(state) != before:
            out.states[key] = state

    def check_timed(self, now: int) -> Outcome:
        """Evaluate the rules that time alone can change: clocked ones (missing data, presence,
        windows) for every device in their scope, the others where a duration is counting."""
        contexts: dict[int, Context] = {}
        waiting = self.waiting
        for rule, members in self.scopes.timed():
            clocked, rule_id = rule.clocked, rule.id
            for info in members:
                if not clocked and (rule_id, info.id) not in waiting:
                    continue  # nothing counting: only a reading can change it
                ctx = contexts.get(info.id)
                if ctx is None:
                    ctx = contexts[info.id] = self._context(info, now)
                self._check(rule, info, ctx)
        return self._done()

    def check_rules(self, rule_ids: Iterable[int]) -> Outcome:
        """Check new or changed rules on every device's latest values, each as of the latest of
        the keys it reads: a rule added while its condition holds raises now, not at the next
        reading of its key."""
        ids = set(rule_ids)
        devices = self.directory.devices
        for device_id, latest in list(self.values.items()):
            info = devices.get(device_id)
            if info is None or not latest:
                continue
            for rule in self.scopes.woken(self.scopes.rules_of(info), set(latest)):
                if rule.id not in ids:
                    continue
                times = [latest[k][0] for k in rule.keys if k in latest]
                if times:
                    self._check(rule, info, self._context(info, max(times)))
        return self._done()
