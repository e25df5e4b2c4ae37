"""A reference evaluator for the hub: every rule, every device, every reading, in time order.

It knows nothing of the hub's index, queue or engine. Given the city's devices and the whole
history (uploads and rule changes, in the order the platform received them), it evaluates EVERY
rule for EVERY device its scope names (the scope read naively from the rule body) after each
timestamp of each upload, on the device's values as of that time, and keeps the alarms as the
alarm store does: at most one active alarm per (type, originator); a raise while one is active
bumps its count, a clear clears it whichever device raised it.

Only the condition's own evaluation is borrowed (``compile_rule`` and ``Condition.test``), and
only conditions that time alone cannot change are supported: thresholds (with or without
hysteresis, ``clear``) and ``all``/``any``/``not`` of them. Where docs/hub.md documents a
semantic that differs from "every rule on every reading", the oracle follows the
documentation; each place says so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from smartpole.hub.rules.conditions import Condition, Context
from smartpole.hub.rules.parser import compile_rule
from smartpole.model.types import Value

__all__ = ["AlarmKey", "AlarmRecord", "Device", "Oracle", "RuleChange", "Upload"]

AlarmKey = tuple[str, str, int]  # (alarm type, originator type, originator id)


@dataclass(frozen=True)
class Device:
    """A device of the city as the rules see it."""

    id: int
    kind: str
    pole_id: int
    pole_code: str
    district: str


@dataclass(frozen=True)
class Upload:
    """One upload of one device: ``(ts, {key: value})`` entries (a burst has several)."""

    device_id: int
    entries: tuple[tuple[int, dict[str, Value]], ...]


@dataclass(frozen=True)
class RuleChange:
    """A rule posted (created, or replaced by name) or, with ``body`` None, deleted."""

    name: str
    body: dict[str, Any] | None


@dataclass
class AlarmRecord:
    """One alarm as the store keeps it."""

    active: bool = True
    count: int = 1


@dataclass
class _Rule:
    body: dict[str, Any]
    condition: Condition
    keys: frozenset[str]
    alarm_type: str
    on_pole: bool
    stateful: bool  # hysteresis: the condition keeps a state per device


@dataclass
class Oracle:
    """Feed it the history with :meth:`apply`; :meth:`alarms` is what the store must hold."""

    devices: list[Device]
    pole_codes: dict[str, int]
    rules: dict[str, _Rule] = field(default_factory=dict)  # by name, in creation order
    history: dict[int, list[tuple[int, str, Value]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    holding: dict[tuple[str, int], bool] = field(default_factory=dict)
    states: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    book: dict[AlarmKey, list[AlarmRecord]] = field(default_factory=lambda: defaultdict(list))
    log: list[str] = field(default_factory=list)  # what happened, for a failure's message

    def apply(self, event: Upload | RuleChange) -> None:
        """Take the next upload or rule change."""
        self.log.append(repr(event))
        if isinstance(event, Upload):
            self._upload(event)
        else:
            self._change(event)

    def alarms(self) -> list[tuple[AlarmKey, bool, int]]:
        """Every alarm: its (type, originator), whether it is active, its count."""
        return sorted(
            (key, record.active, record.count) for key, rs in self.book.items() for record in rs
        )

    # -- scope and values, naively -----------------------------------------------------------
    def watches(self, rule: _Rule, device: Device) -> bool:
        """Whether the rule's scope names the device (kinds, districts, pole codes)."""
        scope = rule.body.get("scope") or {}
        return (
            device.kind in scope.get("kinds", [device.kind])
            and device.district in scope.get("districts", [device.district])
            and device.pole_code in scope.get("poles", [device.pole_code])
        )

    def values_at(self, device: Device, ts: int) -> dict[str, tuple[int, Value]]:
        """The device's value of each key as of ``ts``: its reading with the latest time not
        after ``ts``."""
        out: dict[str, tuple[int, Value]] = {}
        for t, key, value in self.history[device.id]:
            if t <= ts and (key not in out or t >= out[key][0]):
                out[key] = (t, value)
        return out

    def latest(self, device: Device) -> dict[str, tuple[int, Value]]:
        """The device's newest value of each key."""
        return self.values_at(device, 2**62)

    # -- evaluation ----------------------------------------------------------------------------

    def _evaluate(self, name: str, device: Device, values: dict[str, tuple[int, Value]]) -> None:
        """Evaluate one rule for one device and act on a change."""
        rule = self.rules[name]
        # Documented (docs/hub.md, "How evaluation works"): rules are checked when readings of
        # their keys arrive, so a rule meets a device only once it sent a key the rule reads
        # (``not {pm25 > 75}`` does not fire for a device that never sent pm25).
        if not rule.keys & values.keys():
            return
        state = self.states.setdefault((name, device.id), {})
        now = max(t for t, _ in values.values())
        holds = bool(rule.condition.test(Context(values=values, now=now, state=state)))
        if holds != self.holding.get((name, device.id), False):
            self._transition(name, device, holds)

    def _transition(self, name: str, device: Device, raised: bool) -> None:
        """The alarm store's rules, as documented: one active alarm per (type, originator); a
        clear clears it. A pole's alarm stays while the rule holds for another device of the
        pole (every device here has the same owner)."""
        rule = self.rules[name]
        self.holding[(name, device.id)] = raised
        origin = ("pole", device.pole_id) if rule.on_pole else ("device", device.id)
        records = self.book[(rule.alarm_type, *origin)]
        self.log.append(f"  {name} {'raises' if raised else 'clears'} for device {device.id}")
        standing = records[-1] if records and records[-1].active else None
        if raised and standing is not None:
            standing.count += 1
        elif raised:
            records.append(AlarmRecord())
        elif standing is not None and not (
            rule.on_pole
            and any(
                self.holding.get((name, other.id), False)
                for other in self.devices
                if other.pole_id == device.pole_id and other.id != device.id
            )
        ):
            standing.active = False

    def _upload(self, upload: Upload) -> None:
        device = next(d for d in self.devices if d.id == upload.device_id)
        for ts, values in sorted(upload.entries, key=lambda e: e[0]):
            newest = self.latest(device)
            late = {k for k in values if k in newest and ts < newest[k][0]}
            self.history[device.id].extend((ts, k, v) for k, v in values.items())
            if late:
                self._late(device, ts, late)
            if set(values) - late:
                now = self.latest(device)
                for name, rule in self.rules.items():
                    if self.watches(rule, device):
                        self._evaluate(name, device, now)

    def _late(self, device: Device, ts: int, keys: set[str]) -> None:
        """Readings older than the newest of their key.

        Documented (docs/hub.md): a late reading does not replace the latest value; the rules
        it wakes that do not hold now are checked as of its time, then again on the latest
        values (a press reported after its release raises, then clears); an alarm that stands
        is left alone; rules with a state (here: hysteresis) are not replayed. The other keys
        are as of its time one step back (documented): the newest value if not newer, else the
        newest one older than it if not newer, else unknown.
        """
        then: dict[str, tuple[int, Value]] = {}
        for key, value in self.latest(device).items():
            if key in keys:
                continue
            if value[0] <= ts:
                then[key] = value
            elif (prior := self.values_at(device, value[0] - 1).get(key)) and prior[0] <= ts:
                then[key] = prior
        then.update({k: v for k, v in self.values_at(device, ts).items() if k in keys})
        now = self.latest(device)
        for name, rule in self.rules.items():
            if not self.watches(rule, device) or not rule.keys & keys or rule.stateful:
                continue
            if self.holding.get((name, device.id), False):
                continue
            self._evaluate(name, device, then)
            self._evaluate(name, device, now)

    def _change(self, change: RuleChange) -> None:
        if change.body is None:
            # Undocumented, followed as the hub does it: a deleted rule neither raises nor
            # clears any more; its alarms stand as they are.
            del self.rules[change.name]
            for key in [k for k in self.holding if k[0] == change.name]:
                del self.holding[key]
                self.states.pop(key, None)
            return
        compiled = compile_rule(change.body, pole_lookup=self.pole_codes.get)
        [alarm] = [a["alarm"] for a in change.body["actions"] if "alarm" in a]
        new = _Rule(
            body=change.body,
            condition=compiled.condition,
            keys=compiled.keys,
            alarm_type=alarm["type"],
            on_pole=alarm.get("originator") == "pole",
            stateful=compiled.stateful,
        )
        # Documented (docs/hub.md, "Managing rules"): a replaced rule keeps whether it held for
        # each device (its alarm stands until the new condition says otherwise; a device its
        # new scope leaves is no longer checked); an alarm of another type or originator is
        # cleared and the new one raised at once.
        old, raise_new = self.rules.get(change.name), []
        same_alarm = old is None or (old.alarm_type, old.on_pole) == (new.alarm_type, new.on_pole)
        for device in self.devices if not same_alarm else ():
            if not self.holding.get((change.name, device.id), False):
                continue
            self._transition(change.name, device, False)  # as the old version
            if self.watches(new, device):
                raise_new.append(device)
        self.rules[change.name] = new
        for device in raise_new:
            self._transition(change.name, device, True)
        for key in [k for k in self.states if k[0] == change.name]:
            del self.states[key]  # documented: a changed rule starts its state afresh
        # Documented: a rule added or changed is checked at once against every device's latest
        # values.
        for device in self.devices:
            if self.watches(self.rules[change.name], device):
                self._evaluate(change.name, device, self.latest(device))
