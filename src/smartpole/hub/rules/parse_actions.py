"""Actions of a rule body (alarm, command, light, webhook, work order), checked and built into the
actions of :mod:`smartpole.hub.rules.model`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smartpole.hub.rules.model import (
    DEFAULT_COMMAND_EXPIRY_MS,
    Action,
    AlarmAction,
    CommandAction,
    LightAction,
    WebhookAction,
    WorkOrderAction,
)
from smartpole.hub.rules.parse_conditions import parse_duration
from smartpole.hub.rules.problems import Loc, Lookup, Problems
from smartpole.model.lifecycle import Severity
from smartpole.model.types import DeviceKind

__all__ = ["MAX_COMMAND_EXPIRY_MS", "MAX_RADIUS_M", "ActionParser"]

MAX_RADIUS_M = 5_000.0
MAX_COMMAND_EXPIRY_MS = 86_400_000  # the control layer's own limit for a persistent command


class ActionParser:
    """Reads the ``actions`` of a rule body, noting each problem; ``tenant_id`` looks up the
    tenants an alarm is propagated to."""

    def __init__(self, problems: Problems, tenant_id: Lookup) -> None:
        self.problems = problems
        self.err = problems.err
        self.tenant_id = tenant_id

    def actions(self, body: Any, webhooks: Callable[[str], bool]) -> list[Action]:
        """The rule's actions (a non-empty list); ``webhooks`` says which names exist."""
        if not isinstance(body, list) or not body:
            self.err(["actions"], "must be a non-empty list")
            return []
        out: list[Action] = []
        for i, item in enumerate(body):
            loc: Loc = ["actions", i]
            if not isinstance(item, dict) or len(item) != 1:
                self.err(loc, "each action is one of alarm, command, light, webhook, work_order")
                continue
            ((kind, spec),) = item.items()
            if kind == "alarm":
                out.append(self._alarm(spec, [*loc, kind]))
            elif kind == "command":
                out.append(self._command(spec, [*loc, kind]))
            elif kind == "light":
                out.append(self._light(spec, [*loc, kind]))
            elif kind == "webhook":
                name = spec.get("name") if isinstance(spec, dict) else spec
                on = spec.get("on", "both") if isinstance(spec, dict) else "both"
                if not isinstance(name, str) or not webhooks(name):
                    self.err([*loc, kind], f"no webhook {name!r} of this tenant")
                if on not in ("raise", "clear", "both"):
                    self.err([*loc, kind, "on"], "must be raise, clear or both")
                out.append(WebhookAction(str(name), on))
            elif kind == "work_order":
                spec = spec or {}
                if not isinstance(spec, dict):
                    self.err([*loc, kind], "must be an object {team?, note?}")
                    continue
                out.append(WorkOrderAction(spec.get("team"), spec.get("note")))
            else:
                self.err(loc, f"unknown action {kind!r}")
        if any(isinstance(a, WorkOrderAction) for a in out) and not any(
            isinstance(a, AlarmAction) for a in out
        ):
            self.err(["actions"], "a work_order action needs an alarm action to open it for")
        return out

    def _alarm(self, spec: Any, loc: Loc) -> AlarmAction:
        if not isinstance(spec, dict):
            self.err(loc, "must be an object {type, severity, ...}")
            return AlarmAction("_", Severity.INDETERMINATE)
        atype = spec.get("type")
        if not isinstance(atype, str) or not 1 <= len(atype) <= 128:
            self.err([*loc, "type"], "is required, 1 to 128 characters")
        severity = spec.get("severity", "major")
        if severity not in Severity.__members__.values():
            self.err([*loc, "severity"], f"must be one of {', '.join(Severity)}")
            severity = Severity.INDETERMINATE
        originator = spec.get("originator", "device")
        if originator not in ("device", "pole"):
            self.err([*loc, "originator"], "must be device or pole")
        propagate = self.problems.ids(
            spec.get("propagate"), [*loc, "propagate"], self.tenant_id, "tenant"
        )
        details = spec.get("details", {})
        if not isinstance(details, dict):
            self.err([*loc, "details"], "must be an object")
            details = {}
        latch = spec.get("latch", False)
        if not isinstance(latch, bool):
            self.err([*loc, "latch"], "must be true or false")
            latch = False
        return AlarmAction(
            str(atype),
            Severity(severity),
            str(originator),
            tuple(propagate),
            bool(spec.get("clear", True)),
            details,
            latch,
        )

    def _command(self, spec: Any, loc: Loc) -> CommandAction:
        if not isinstance(spec, dict):
            self.err(loc, "must be an object {method, params, kind?, target?}")
            return CommandAction("_", {})
        method = spec.get("method")
        if not isinstance(method, str) or not 1 <= len(method) <= 128:
            self.err([*loc, "method"], "is required, 1 to 128 characters")
        kind = spec.get("kind")
        if kind is not None and kind not in DeviceKind.__members__.values():
            self.err([*loc, "kind"], f"unknown device kind {kind!r}")
        target, radius = self._target(spec.get("target", "self"), [*loc, "target"])
        if target != "self" and kind is None:
            self.err([*loc, "kind"], "is required to command devices other than the originator")
        on = spec.get("on", "raise")
        if on not in ("raise", "clear"):
            self.err([*loc, "on"], "must be raise or clear")
        persistent = spec.get("persistent", True)
        if not isinstance(persistent, bool):
            self.err([*loc, "persistent"], "must be true or false")
            persistent = True
        expires = DEFAULT_COMMAND_EXPIRY_MS
        if "expires" in spec:
            if not persistent:
                self.err([*loc, "expires"], "only a persistent command waits, and expires")
            try:
                expires = parse_duration(spec["expires"])
            except ValueError as e:
                self.err([*loc, "expires"], str(e))
            if expires > MAX_COMMAND_EXPIRY_MS:
                self.err([*loc, "expires"], "at most 1d")
        return CommandAction(
            str(method),
            spec.get("params", {}),
            kind,
            str(target),
            float(radius),
            str(on),
            persistent,
            expires,
        )

    def _target(self, target: Any, loc: Loc) -> tuple[str, float]:
        """``self``, ``pole`` or ``{within_m: metres}`` as (target, radius)."""
        if isinstance(target, dict) and "within_m" in target:
            radius = target["within_m"]
            if not isinstance(radius, int | float) or not 0 < radius <= MAX_RADIUS_M:
                self.err([*loc, "within_m"], f"a radius in (0, {MAX_RADIUS_M:g}] m")
                return "radius", 0.0
            return "radius", float(radius)
        if target not in ("self", "pole"):
            self.err(loc, "must be self, pole or {within_m: metres}")
        return str(target), 0.0

    def _light(self, spec: Any, loc: Loc) -> LightAction:
        if not isinstance(spec, dict):
            self.err(loc, "must be an object {level, for, target?}")
            return LightAction(100.0, 0)
        unknown = set(spec) - {"level", "for", "target"}
        if unknown:
            self.err([*loc, sorted(unknown)[0]], "unknown field: level, for and target are known")
        level = spec.get("level", 100)
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 <= level <= 100:
            self.err([*loc, "level"], "a level from 0 to 100 (%)")
            level = 100
        for_ms = 0
        try:
            for_ms = parse_duration(spec.get("for", "30m"))
        except ValueError as e:
            self.err([*loc, "for"], str(e))
        if for_ms > MAX_COMMAND_EXPIRY_MS:
            self.err([*loc, "for"], "at most 1d: a hold always ends")
        target, radius = self._target(spec.get("target", "pole"), [*loc, "target"])
        return LightAction(float(level), for_ms, target, radius)
