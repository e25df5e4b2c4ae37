"""The one rule of every transport's gateway API, over the registry: which devices a gateway
may speak for (:meth:`smartpole.registry.assets.Assets.gateway_devices`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select

from smartpole.model.types import DeviceRef
from smartpole.registry.grants import gateway_bindings
from smartpole.registry.refs import REF_COLUMNS, ref_of
from smartpole.store.schema import devices, tenants

__all__ = ["gateways_devices"]


def gateways_devices(
    engine: Engine, asks: Sequence[tuple[DeviceRef, Sequence[str]]]
) -> list[tuple[dict[str, DeviceRef], dict[str, str]]]:
    """For each ``(gateway, names)``: which of the devices ``names`` the gateway may speak for,
    and why not the others (``(allowed, refused)``; names of no device are in neither).

    A gateway speaks only for devices on its own pole (never for itself) that its own tenant
    owns, or that their owner bound to it (:mod:`smartpole.registry.grants`); a city
    operator's gateway for every device on its pole. Every gateway asks after a restart: two or
    three queries on one connection whatever their number."""
    unique = list(dict.fromkeys(n for _, names in asks for n in names))
    owners = list({gateway.owner_id for gateway, _ in asks})
    found: dict[str, DeviceRef] = {}
    with engine.connect() as conn:
        for i in range(0, len(unique), 500):
            query = select(*REF_COLUMNS).where(devices.c.name.in_(unique[i : i + 500]))
            found.update((row.name, ref_of(row)) for row in conn.execute(query))
        operators = set(
            conn.execute(
                select(tenants.c.id).where(tenants.c.id.in_(owners), tenants.c.is_operator)
            ).scalars()
        )
        judged = [
            _judge(gateway, [found[n] for n in dict.fromkeys(names) if n in found])
            for gateway, names in asks
        ]
        # another tenant's devices on an ordinary tenant's gateway: bound to it?
        strangers = [
            (gateway, ref)
            for (gateway, _), (_, _, foreign) in zip(asks, judged, strict=True)
            if gateway.owner_id not in operators
            for ref in foreign
        ]
        bound: set[tuple[int, int]] = set()
        for i in range(0, len(strangers), 500):
            part = strangers[i : i + 500]
            rows = conn.execute(
                select(gateway_bindings.c.gateway_id, gateway_bindings.c.device_id).where(
                    gateway_bindings.c.gateway_id.in_({g.id for g, _ in part}),
                    gateway_bindings.c.device_id.in_({r.id for _, r in part}),
                    gateway_bindings.c.revoked.is_(None),
                )
            )
            bound |= {(g, d) for g, d in rows}
    answers = []
    for (gateway, _), (allowed, refused, foreign) in zip(asks, judged, strict=True):
        city = gateway.owner_id in operators
        for ref in foreign:
            if city or (gateway.id, ref.id) in bound:
                allowed[ref.name] = ref
            else:
                refused[ref.name] = "it is another tenant's and not bound to the gateway"
        answers.append((allowed, refused))
    return answers


def _judge(
    gateway: DeviceRef, found: list[DeviceRef]
) -> tuple[dict[str, DeviceRef], dict[str, str], list[DeviceRef]]:
    """The rule over the devices found by name, but for another tenant's devices on the
    gateway's pole: those are left to the caller (the third list), which knows whether the
    gateway is the city operator's or bound to them."""
    allowed: dict[str, DeviceRef] = {}
    refused: dict[str, str] = {}
    foreign: list[DeviceRef] = []
    for ref in found:
        if ref.id == gateway.id:
            refused[ref.name] = "a gateway does not report itself as a sub-device"
        elif gateway.pole_id is None or ref.pole_id != gateway.pole_id:
            refused[ref.name] = "it is not on the gateway's pole"
        elif ref.owner_id == gateway.owner_id:
            allowed[ref.name] = ref
        else:
            foreign.append(ref)
    return allowed, refused, foreign
