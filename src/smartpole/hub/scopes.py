"""Which devices each rule watches: the hub's scope index.

A rule's scope (kinds, districts, tenants, tags, poles, devices, a polygon) is tested against a
device once, not once per reading: the index keeps each device's rules by the key that wakes
them, and each timed rule's devices. Rules are bucketed by (kind, district) so that a device
is tested only against the rules of its kind and district and those that do not narrow by
either (with 1,000 rules over 20 districts, a device meets ~50, not 1,000). A new directory
keeps what was computed for every device whose record and pole did not change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from shapely.geometry import Point

from smartpole.hub.directory import DeviceInfo, Directory, PoleInfo
from smartpole.hub.rules.conditions import ANY_KEY
from smartpole.hub.rules.model import Rule

__all__ = ["ScopeIndex", "in_scope"]

Bucket = tuple[str | None, str | None]  # (kind, district); None: the rule does not narrow by it


def in_scope(rule: Rule, info: DeviceInfo, pole: PoleInfo | None) -> bool:
    """Whether the rule watches the device (on ``pole``): the one scope rule."""
    s = rule.scope
    if s.kinds and info.kind not in s.kinds:
        return False
    if not rule.city_wide and info.owner_id != rule.tenant_id:
        return False
    if (s.tenants and info.owner_id not in s.tenants) or (s.devices and info.id not in s.devices):
        return False
    if s.tags and not (s.tags & info.tags):
        return False
    if s.poles and info.pole_id not in s.poles:
        return False
    if s.districts or s.polygon is not None:
        if pole is None or (s.districts and pole.district not in s.districts):
            return False
        if s.polygon is not None:
            return bool(s.polygon.contains(Point(pole.lon, pole.lat)))
    return True


class ScopeIndex:
    """Each device's rules by the key that wakes them, and each timed rule's devices."""

    def __init__(self, rules: Iterable[Rule], directory: Directory) -> None:
        self._rules = sorted(rules, key=lambda r: r.id)
        self._directory = directory
        buckets: dict[Bucket, list[Rule]] = defaultdict(list)
        for rule in self._rules:
            for kind in rule.scope.kinds or (None,):
                for district in rule.scope.districts or (None,):
                    buckets[(kind, district)].append(rule)
        self._buckets = dict(buckets)
        self._by_device: dict[int, dict[str, list[Rule]]] = {}
        # devices watched by the same rules share one dict (kept here, so that its id stays
        # its own while the index lives), and the rules a set of keys wakes in it is kept
        self._shared: dict[tuple[int, ...], dict[str, list[Rule]]] = {}
        self._woken: dict[tuple[int, frozenset[str]], list[Rule]] = {}
        self._timed: list[tuple[Rule, list[DeviceInfo]]] | None = None

    @property
    def directory(self) -> Directory:
        """The registry the index was computed against."""
        return self._directory

    def rules_of(self, info: DeviceInfo) -> dict[str, list[Rule]]:
        """The rules watching the device, by the key that wakes them (each rule in id order)."""
        mine = self._by_device.get(info.id)
        if mine is None:
            mine = self._by_device[info.id] = self._compute(info)
        return mine

    def _candidates(self, info: DeviceInfo, pole: PoleInfo | None) -> list[Rule]:
        """The rules of the device's kind and district, and those narrowing by neither (a
        rule is in one bucket per (kind, district) it names, so no rule comes twice)."""
        buckets: list[Bucket] = [(info.kind, None), (None, None)]
        if pole is not None and pole.district is not None:
            buckets += [(info.kind, pole.district), (None, pole.district)]
        found = [rule for b in buckets for rule in self._buckets.get(b, ())]
        return sorted(found, key=lambda r: r.id)

    def _compute(self, info: DeviceInfo) -> dict[str, list[Rule]]:
        pole = self._directory.pole_of(info)
        out: dict[str, list[Rule]] = defaultdict(list)
        ids: list[int] = []
        for rule in self._candidates(info, pole):
            if in_scope(rule, info, pole):
                ids.append(rule.id)
                for key in rule.keys:
                    out[key].append(rule)
        return self._shared.setdefault(tuple(ids), dict(out))

    def woken(self, mine: dict[str, list[Rule]], keys: set[str]) -> list[Rule]:
        """The rules of :meth:`rules_of` that readings of these keys wake (each once); a
        device reports the same keys step after step, so the answer is kept."""
        if len(keys) == 1 and ANY_KEY not in mine:  # the common case: no merging needed
            return mine.get(next(iter(keys)), [])
        cache_key = (id(mine), frozenset(keys))
        found = self._woken.get(cache_key)
        if found is None:
            candidates: dict[int, Rule] = {}
            for key in (*keys, ANY_KEY):
                for rule in mine.get(key, ()):
                    candidates[rule.id] = rule
            found = self._woken[cache_key] = list(candidates.values())
        return found

    def timed(self) -> list[tuple[Rule, list[DeviceInfo]]]:
        """Every rule that time alone can change, with the devices it watches."""
        if self._timed is None:
            members: dict[int, list[DeviceInfo]] = defaultdict(list)
            for info in self._directory.devices.values():
                seen: set[int] = set()
                for rules in self.rules_of(info).values():
                    for rule in rules:
                        if rule.timed and rule.id not in seen:
                            seen.add(rule.id)
                            members[rule.id].append(info)
            self._timed = [(r, members[r.id]) for r in self._rules if r.timed and members[r.id]]
        return self._timed

    def with_directory(self, directory: Directory) -> None:
        """Take a newly loaded registry, keeping the rules of unchanged devices."""
        old = self._directory
        for device_id in list(self._by_device):
            before, now = old.devices.get(device_id), directory.devices.get(device_id)
            if now is None or now != before or old.pole_of(now) != directory.pole_of(now):
                del self._by_device[device_id]
        if old.devices.keys() != directory.devices.keys() or self._timed_changed(old, directory):
            self._timed = None
        self._directory = directory

    def _timed_changed(self, old: Directory, new: Directory) -> bool:
        """Whether a device's record or pole changed (its timed rules may have)."""
        for device_id, info in new.devices.items():
            if old.devices.get(device_id) != info or old.pole_of(info) != new.pole_of(info):
                return True
        return False
