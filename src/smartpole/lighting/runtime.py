"""Lighting at work: every tenant's lamps kept on their plans while the platform runs.

:class:`LightingRuntime` builds the :class:`~smartpole.lighting.service.LightingService` with
itself as its plan listener, drives the parts that act on plans and answers, from memory, what
a lamp's plan says now (``expected``, for the
:class:`~smartpole.lighting.conformance.Conformance` detector and the diagnostics):

- the :class:`~smartpole.lighting.push.PlanPusher` (a ``lightingPlan`` shared attribute per pole
  gateway, pushed when its lamps' plans change and before it runs out),
- :class:`~smartpole.lighting.push.TimedCommands` (``setDim`` at each step for lamps without a
  gateway of their tenant's),
- rule holds (the SOS rule's ``light`` action, :class:`~smartpole.hub.actions.LampHolder`).

Plans are compiled again every ``recompile_s`` (the nights roll on; lamps are mounted, moved,
re-rated) and at start, so that a restarted platform pushes what its gateways need.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from smartpole.control.commands import Control
from smartpole.lighting.conformance import LampRef
from smartpole.lighting.lamps import LampInventory, LampRecord
from smartpole.lighting.plan import Plan, level_at
from smartpole.lighting.push import PlanPusher, TimedCommands, command_sender
from smartpole.lighting.service import LightingService
from smartpole.lighting.store import LightingStore
from smartpole.model.clock import now_ms
from smartpole.model.types import Role, Scope
from smartpole.registry.access import Principal
from smartpole.store.series import TimeSeries

__all__ = ["LightingRuntime"]

log = logging.getLogger(__name__)

StoreShared = Callable[[int, Scope, dict[str, Any]], None]
"""(device id, scope, values): keep attributes (``registry.assets.Assets.set_attributes``)."""
PushShared = Callable[[int, dict[str, Any]], Awaitable[bool]]
"""(device id, values): send shared attributes to a connected device; True when delivered."""


ALL = ""
"""The pusher's and timed commands' one view: a gateway's plan holds every tenant's lamps behind
it (device names are unique across tenants)."""


class LightingRuntime:
    """Pushes plans, times commands, watches levels and holds lamps for every tenant."""

    def __init__(
        self,
        store: LightingStore,
        inventory: LampInventory,
        series: TimeSeries,
        control: Control,
        store_shared: StoreShared,
        push_shared: PushShared,
        *,
        clock: Callable[[], int] = now_ms,
        refresh_days: float = 2.0,
    ) -> None:
        self.store = store
        self.control = control
        self.store_shared = store_shared
        self.push_shared = push_shared
        self.service = LightingService(
            store, inventory, series, clock=clock, plan_listeners=[self.plans_changed]
        )
        self._tenant_ids: dict[str, int] = {}  # tenants with lighting, by name
        self._records: dict[str, LampRecord] = {}  # every tenant's lamps by device name
        self._gateways: dict[str, int] = {}  # the gateways they are behind: name -> device id
        self._names: dict[int, set[str]] = {}  # each tenant's lamp names
        self._refs: dict[int, LampRef] = {}  # lamp device id -> who it is
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pusher = PlanPusher(
            self.plans_of, self.gateway_of, self.set_shared, refresh_days=refresh_days
        )
        self.timed = TimedCommands(
            self.plans_of, self.gateway_of, command_sender(control, self.device_id_of)
        )

    # -- look-ups (in memory: they run on the event loop for every lamp reading) --------------
    def plans_of(self, tenant: str) -> dict[str, Plan]:
        """A tenant's plans by lamp name as last compiled; every tenant's for ``ALL``."""
        if tenant != ALL:
            tenant_id = self._tenant_ids.get(tenant)
            return {} if tenant_id is None else self.service.compiled(tenant_id)
        merged: dict[str, Plan] = {}
        for tenant_id in list(self._tenant_ids.values()):
            merged.update(self.service.compiled(tenant_id))
        return merged

    def gateway_of(self, tenant: str, lamp: str) -> str | None:
        """The gateway the lamp is behind; None for a lamp connected directly."""
        record = self._records.get(lamp)
        return (record.lamp.gateway or None) if record is not None else None

    def device_id_of(self, tenant: str, name: str) -> int | None:
        """The device id of a lamp or of a gateway lamps are behind, by name."""
        record = self._records.get(name)
        return record.device_id if record is not None else self._gateways.get(name)

    def lamp_of(self, device_id: int) -> LampRef | None:
        """Who a lamp device is (None: no lamp of a tenant with lighting)."""
        return self._refs.get(device_id)

    def expected(self, tenant: str, lamp: str, ts_ms: int) -> float | None:
        """The plan's level for the lamp at ``ts_ms``; None when it has no plan to follow."""
        plan = self.plans_of(tenant).get(lamp)
        if not plan or ts_ms < plan[0].ts_ms - 43_200_000:
            return None  # no program, or a reading from before the plan compiled covers
        return level_at(plan, ts_ms)[0]

    def commanded(self, device_id: int, ts_ms: int) -> float | None:
        """The level a lamp device's plan gives it at ``ts_ms`` (None: no plan)."""
        ref = self._refs.get(device_id)
        return None if ref is None else self.expected(ref.tenant, ref.lamp, ts_ms)

    # -- plan changes -----------------------------------------------------------------------
    def _index(self, tenant: str, tenant_id: int) -> None:
        """Read the tenant's lamps again (blocking: in a worker thread)."""
        records = self.service.inventory.lamps(tenant_id)
        with self._lock:
            self._tenant_ids[tenant] = tenant_id
            for name in self._names.pop(tenant_id, set()):
                record = self._records.pop(name, None)
                if record is not None:
                    self._refs.pop(record.device_id, None)
            self._names[tenant_id] = {r.lamp.id for r in records}
            for r in records:
                self._records[r.lamp.id] = r
                self._refs[r.device_id] = LampRef(
                    tenant, r.lamp.id, tenant_id, r.device_id, r.pole_id
                )
            # the gateways lamps are behind now: a deleted one is no longer refreshed
            gateways = {
                r.lamp.gateway: r.gateway_id
                for r in self._records.values()
                if r.gateway_id is not None
            }
            gone = set(self._gateways) - set(gateways)
            self._gateways = gateways
        if gone:
            self._on_loop(self.pusher.forget, ALL, gone)

    def plans_changed(self, tenant: str, lamps: set[str]) -> None:
        """Plan listener (called in the thread that changed the plans): the pusher and the
        timed commands take the change on the event loop."""
        if any(lamp not in self._records for lamp in lamps):
            tenant_id = self.service_tenant(tenant)  # a tenant's first change, a lamp mounted
            if tenant_id is not None:
                self._index(tenant, tenant_id)
        self._on_loop(self._apply, lamps)

    def _on_loop(self, work: Callable[..., None], *args: Any) -> None:
        """Run ``work`` on the event loop (the pusher's state lives there); at once before
        the loop runs."""
        loop = self._loop
        if loop is None or not loop.is_running():
            work(*args)
        else:
            loop.call_soon_threadsafe(work, *args)

    def _apply(self, lamps: set[str]) -> None:
        self.pusher.plans_changed(ALL, lamps)
        self.timed.plans_changed(ALL, lamps)

    def service_tenant(self, tenant: str) -> int | None:
        """The id of a tenant with lighting, by name (None: it has none)."""
        if tenant in self._tenant_ids:
            return self._tenant_ids[tenant]
        return next((i for i, n in self.store.tenants() if n == tenant), None)

    def recompile(self) -> int:
        """Compile every tenant's plans again, telling the pushers what changed (blocking: in a
        worker thread); how many lamps' plans changed."""
        touched = 0
        for tenant_id, tenant in self.store.tenants():
            try:
                self._index(tenant, tenant_id)
                touched += len(self.service.recompile(_system(tenant_id, tenant)))
            except Exception:
                log.exception("lighting: compiling the plans of tenant %s failed", tenant)
        # lamps that lost or gained a gateway without a change of plan: route them again
        self.plans_changed(ALL, set())
        return touched

    # -- the way out ------------------------------------------------------------------------
    async def set_shared(self, tenant: str, gateway: str, values: dict[str, Any]) -> bool:
        """Keep the gateway's shared attributes and push them if it is connected."""
        device_id = self.device_id_of(tenant, gateway)
        if device_id is None:
            return False
        await asyncio.to_thread(self.store_shared, device_id, Scope.SHARED, values)
        return await self.push_shared(device_id, values)

    async def hold(
        self, tenant_id: int, lamps: list[int], level: float, until_ms: int, reason: str
    ) -> None:
        """A rule's hold (:class:`~smartpole.hub.actions.LampHolder`): the lamps (by device id,
        the ones the rule may reach: the hub chose them) at ``level`` until ``until_ms`` in
        their plans, as an override of each owner's (a city-wide SOS rule holds the lighting
        department's lamps)."""
        by_owner: dict[tuple[int, str], list[str]] = {}
        for device_id in lamps:
            ref = self._refs.get(device_id)
            if ref is not None:
                by_owner.setdefault((ref.tenant_id, ref.tenant), []).append(ref.lamp)
        # lamps of tenants without lighting get the rule's setDim commands and nothing more
        for (owner_id, owner), names in sorted(by_owner.items()):
            who = _system(owner_id, owner)
            await asyncio.to_thread(self.service.hold, who, names, level, until_ms, reason)

    # -- running ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Compile every tenant's plans (their gateways get them on the first tick)."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.recompile)

    async def tick(self) -> None:
        """Push the plans due and send the timed commands due now (each on its own: a failure
        of one never stops the other)."""
        for work in (self.pusher.tick, self.timed.tick):
            try:
                await work()
            except Exception:
                log.exception("lighting: %s failed", work.__qualname__)

    async def roll_on(self) -> None:
        """Compile again (the platform's clock calls it every few minutes)."""
        await asyncio.to_thread(self.recompile)

    def tenants(self) -> Iterable[str]:
        """The tenants whose lamps the runtime knows."""
        return list(self._tenant_ids)


def _system(tenant_id: int, tenant: str) -> Principal:
    """The platform acting for a tenant's lighting (recompiles, rule holds)."""
    return Principal(tenant_id, tenant, Role.OPERATOR, is_operator=False, name="lighting")
