"""Getting plans to the lamps: a ``lightingPlan`` shared attribute per pole gateway, pushed when
its lamps' plans change and again before it runs out; timed ``setDim`` commands for lamps that
have no gateway (connected directly).

Both are driven by the app: ``plans_changed`` is a ``LightingService`` plan listener (tenant, lamp
ids whose plan changed) and ``tick(now_ms)`` runs on the app's clock. What they need from the
platform comes in as plain callables: the tenant's current plans, each lamp's gateway, and the
way out (set a device's shared attributes; queue a command).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from smartpole.control.commands import Control
from smartpole.errors import SmartpoleError
from smartpole.lighting.plan import Plan
from smartpole.model.clock import now_ms
from smartpole.model.gateway_plan import PLAN_ATTRIBUTE, GatewayPlan, plan_attribute

__all__ = [
    "GatewayOf",
    "PlanPusher",
    "PlansOf",
    "SendDim",
    "SetShared",
    "TimedCommands",
    "command_sender",
    "gateway_plans",
]

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
MORNING_MS = 6 * 3_600_000  # a plan holds its last step (off at sunrise) into the morning
RETRY_MS = 3_600_000  # a push that did not reach its gateway, or a plan not rolled on, waits

PlansOf = Callable[[str], Mapping[str, Plan]]
"""A tenant's current plans by lamp id (the lighting service's last compile)."""
GatewayOf = Callable[[str, str], str | None]
"""(tenant, lamp) -> the gateway (device name) the lamp is behind; None when connected directly."""
SetShared = Callable[[str, str, dict[str, Any]], Awaitable[bool]]
"""(tenant, device name, values): store shared attributes and push them; True when delivered."""
SendDim = Callable[[str, str, float, int, int], Awaitable[None]]
"""(tenant, lamp, level %, fade_s, until_ms): queue a ``setDim`` valid until ``until_ms``."""


def gateway_plans(
    plans: Mapping[str, Plan],
    gateway_of: Callable[[str], str | None],
    generated_ms: int | None = None,
) -> dict[str, GatewayPlan]:
    """Each gateway's plan from its lamps' plans (lamps without a gateway are left out). It is
    valid until the morning after its lamps' last step (the last night's sunrise + 6 h): past
    that a gateway falls back to its own default."""
    now = now_ms() if generated_ms is None else generated_ms
    steps: dict[str, dict[str, tuple[tuple[int, float, int], ...]]] = {}
    compact: dict[int, tuple[tuple[int, float, int], ...]] = {}  # shared plans compacted once
    for lamp, plan in plans.items():
        gateway = gateway_of(lamp)
        if gateway is None:
            continue
        key = id(plan)
        if key not in compact:
            compact[key] = tuple((s.ts_ms, s.level, s.fade_s) for s in plan)
        steps.setdefault(gateway, {})[lamp] = compact[key]
    out: dict[str, GatewayPlan] = {}
    for gateway, lamps in steps.items():
        last = max((s[-1][0] for s in lamps.values() if s), default=now)
        out[gateway] = GatewayPlan(gateway, now, last + MORNING_MS, lamps)
    return out


@dataclass(slots=True)
class _Pushed:
    hash: str
    valid_until_ms: int
    delivered: bool
    at_ms: int


class PlanPusher:
    """Pushes each gateway's ``lightingPlan`` when its lamps' plans changed, and again when the
    plan pushed last ends in under ``refresh_days`` (the service has compiled further nights by
    then); a push that did not reach the gateway is tried again after an hour."""

    def __init__(
        self,
        plans_of: PlansOf,
        gateway_of: GatewayOf,
        set_shared: SetShared,
        *,
        refresh_days: float = 2.0,
    ) -> None:
        self.plans_of = plans_of
        self.gateway_of = gateway_of
        self.set_shared = set_shared
        self.refresh_ms = int(refresh_days * DAY_MS)
        self.pushed: dict[tuple[str, str], _Pushed] = {}
        self._changed: dict[str, set[str]] = {}

    def plans_changed(self, tenant: str, changed: set[str]) -> None:
        """Plan listener: these lamps' plans changed; their gateways go out on the next tick."""
        self._changed.setdefault(tenant, set()).update(changed)

    def forget(self, tenant: str, gateways: set[str]) -> None:
        """Stop refreshing gateways that are gone (deleted, or no lamp is behind them)."""
        for gateway in gateways:
            self.pushed.pop((tenant, gateway), None)

    def _due(self, now: int) -> dict[str, set[str]]:
        """The gateways to look at, by tenant: changed, running out, or not delivered."""
        due: dict[str, set[str]] = {}
        for tenant, lamps in self._changed.items():
            for lamp in lamps:
                gateway = self.gateway_of(tenant, lamp)
                if gateway is not None:
                    due.setdefault(tenant, set()).add(gateway)
        self._changed = {}
        for (tenant, gateway), last in self.pushed.items():
            stale = last.valid_until_ms - now < self.refresh_ms or not last.delivered
            if stale and now - last.at_ms >= RETRY_MS:
                due.setdefault(tenant, set()).add(gateway)
        return due

    async def tick(self, now: int | None = None) -> list[str]:
        """Push what is due at ``now`` (ms); the gateways pushed."""
        now = now_ms() if now is None else now
        sent: list[str] = []
        for tenant, gateways in self._due(now).items():
            lamps = {
                lamp: plan
                for lamp, plan in self.plans_of(tenant).items()
                if self.gateway_of(tenant, lamp) in gateways
            }
            built = gateway_plans(lamps, _of_tenant(self.gateway_of, tenant), now)
            for gateway in sorted(gateways):
                plan = built.get(gateway) or GatewayPlan(gateway, now, now, {})
                last = self.pushed.get((tenant, gateway))
                if (
                    last is not None
                    and last.delivered
                    and last.hash == plan.hash
                    and plan.valid_until_ms <= last.valid_until_ms
                ):
                    last.at_ms = now
                    continue  # nothing new (a plan not rolled on yet): ask again in an hour
                try:
                    delivered = await self.set_shared(
                        tenant, gateway, {PLAN_ATTRIBUTE: plan_attribute(plan)}
                    )
                except Exception:  # one gateway's failure must not stop the others' plans
                    log.exception("pushing the lighting plan of gateway %s failed", gateway)
                    delivered = False
                self.pushed[(tenant, gateway)] = _Pushed(
                    plan.hash, plan.valid_until_ms, delivered, now
                )
                sent.append(gateway)
        return sent


def _of_tenant(gateway_of: GatewayOf, tenant: str) -> Callable[[str], str | None]:
    return lambda lamp: gateway_of(tenant, lamp)


class TimedCommands:
    """``setDim`` at each plan step for lamps connected without a gateway: on every tick, a lamp
    whose current step (level and start) differs from the one last sent gets it, with what is
    left of its fade; the command is valid until the lamp's next step."""

    def __init__(self, plans_of: PlansOf, gateway_of: GatewayOf, send: SendDim) -> None:
        self.plans_of = plans_of
        self.gateway_of = gateway_of
        self.send = send
        self.direct: dict[str, set[str]] = {}  # by tenant: its lamps without a gateway
        self.sent: dict[tuple[str, str], tuple[int, float]] = {}

    def plans_changed(self, tenant: str, changed: set[str]) -> None:
        """Plan listener: the tenant's lamps without a gateway are found again (a change of
        plans is when lamps come and go); the next ticks send their steps."""
        self.direct[tenant] = {
            lamp for lamp in self.plans_of(tenant) if self.gateway_of(tenant, lamp) is None
        }

    async def tick(self, now: int | None = None) -> int:
        """Send the steps due at ``now`` (ms); how many commands were queued."""
        now = now_ms() if now is None else now
        count = 0
        for tenant, direct in sorted(self.direct.items()):
            plans = self.plans_of(tenant)
            for lamp in sorted(direct):
                plan = plans.get(lamp)
                if not plan:
                    continue
                i = bisect.bisect_right(plan, now, key=lambda step: step.ts_ms)
                if i == 0:
                    continue
                step = plan[i - 1]
                if self.sent.get((tenant, lamp)) == (step.ts_ms, step.level):
                    continue
                fade_s = max(0, step.fade_s - (now - step.ts_ms) // 1000)
                until = plan[i].ts_ms if i < len(plan) else now + DAY_MS
                try:
                    await self.send(tenant, lamp, step.level, int(fade_s), until)
                except SmartpoleError as err:  # one lamp's refusal must not stop the others
                    log.warning("timed setDim to %s/%s failed: %s", tenant, lamp, err)
                    continue
                except Exception:
                    log.exception("timed setDim to %s/%s failed", tenant, lamp)
                    continue
                self.sent[(tenant, lamp)] = (step.ts_ms, step.level)
                count += 1
        return count


def command_sender(control: Control, device_id_of: Callable[[str, str], int | None]) -> SendDim:
    """A ``SendDim`` through the command queue: a persistent one-way ``setDim`` that waits for
    an offline lamp until its step is over (then the next step's command replaces it)."""

    async def send(tenant: str, lamp: str, level: float, fade_s: int, until_ms: int) -> None:
        device_id = device_id_of(tenant, lamp)
        if device_id is None:
            return
        expiration = max(1, until_ms - now_ms())
        await control.call(
            device_id,
            "setDim",
            {"level": level, "fade_s": fade_s},
            oneway=True,
            persistent=True,
            expiration_ms=expiration,
        )

    return send
