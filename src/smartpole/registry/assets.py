"""Poles and devices: create, read, update, delete, with per-tenant visibility."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Select

from smartpole.errors import Conflict, Forbidden, InvalidInput, NotFound
from smartpole.model.clock import now_ms
from smartpole.model.devices import Device
from smartpole.model.poles import MountedDevice, Pole
from smartpole.model.types import POLE_CODE_RE, DeviceKind, DeviceRef, Role, Scope, key_errors
from smartpole.registry.access import Principal, hash_secret, new_secret, token_hint
from smartpole.registry.broker_hashes import save_broker_hashes
from smartpole.registry.gateway_rule import gateways_devices
from smartpole.registry.grants import may_mount
from smartpole.registry.refs import REF_COLUMNS, ref_of
from smartpole.registry.unique import device_taken
from smartpole.store.database import put_rows
from smartpole.store.schema import attributes, devices, poles, tenants

__all__ = ["Assets", "PoleFilter", "pole_of", "seen_recently"]

POLE_FIELDS = ("code", "name", "lat", "lon", "height_m", "district", "road", "installed")
TOKEN_CACHE_S = 30.0
KINDS = {str(kind): kind for kind in DeviceKind}  # a dict lookup costs less than DeviceKind(...)


@dataclass(frozen=True, slots=True)
class PoleFilter:
    """Which poles a listing wants."""

    district: str | None = None
    road: str | None = None
    code_prefix: str | None = None


def seen_recently(last_seen: int | None, inactivity_timeout_s: float) -> bool:
    """Whether a device that holds no live session counts as online: it was heard from within
    the inactivity timeout (``last_seen`` in ms)."""
    return last_seen is not None and now_ms() - last_seen < inactivity_timeout_s * 1000


def check_pole(values: dict[str, Any]) -> dict[str, Any]:
    """Validate pole fields; raise InvalidInput listing every problem."""
    errors: list[dict[str, Any]] = []
    code = values.get("code")
    if code is not None and not POLE_CODE_RE.match(str(code)):
        errors.append({"loc": ["code"], "msg": "letters, digits, '-' and '_' only (1-64)"})
    lat, lon = values.get("lat"), values.get("lon")
    if lat is not None and not -90 <= lat <= 90:
        errors.append({"loc": ["lat"], "msg": f"latitude {lat} outside [-90, 90]"})
    if lon is not None and not -180 <= lon <= 180:
        errors.append({"loc": ["lon"], "msg": f"longitude {lon} outside [-180, 180]"})
    h = values.get("height_m")
    if h is not None and not 0 < h <= 100:
        errors.append({"loc": ["height_m"], "msg": f"height {h} m outside (0, 100]"})
    if errors:
        raise InvalidInput("invalid pole", errors=errors)
    return values


def pole_of(row: Sequence[Any], devices: tuple[MountedDevice, ...] | None = None) -> Pole:
    """A row of the poles table (its columns, in the table's order, are Pole's fields) as a
    value, with its devices when they were read; built positionally, as geo queries build
    thousands."""
    pole_id, code, name, lat, lon, height_m, district, road, installed, created = row
    return Pole(
        pole_id, code, name, lat, lon, height_m, district, road, installed, created, devices
    )


def _device(row: Sequence[Any]) -> Device:
    """A row of :meth:`Assets.device_query` (its columns in the order of Device's fields) as a
    value; built positionally, since a listing builds a thousand."""
    device_id, name, kind, *rest = row
    return Device(device_id, name, KINDS[kind], *rest)


def check_not_null(values: dict[str, Any], fields: tuple[str, ...], what: str) -> None:
    """Raise InvalidInput when a change sets one of ``fields`` to null."""
    errors = [
        {"loc": [k], "msg": "may not be null"} for k in fields if k in values and values[k] is None
    ]
    if errors:
        raise InvalidInput(f"invalid {what}", errors=errors)


class Assets:
    """The registry of poles and devices, and the devices' attributes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tokens: dict[str, tuple[float, DeviceRef]] = {}
        self._lock = threading.Lock()

    # -- visibility -----------------------------------------------------------------------
    @staticmethod
    def _visible_devices(who: Principal) -> Any:
        return True if who.is_operator else devices.c.owner_id == who.tenant_id

    @staticmethod
    def _visible_poles(who: Principal) -> Any:
        if who.is_operator:
            return True
        return exists().where(
            and_(devices.c.pole_id == poles.c.id, devices.c.owner_id == who.tenant_id)
        )

    # -- poles ----------------------------------------------------------------------------
    def create_pole(self, who: Principal, **values: Any) -> Pole:
        """Add a pole (city operator only); its code is unique."""
        who.require_city(Role.OPERATOR)
        check_pole(values)
        try:
            with self.engine.begin() as conn:
                pid = conn.execute(
                    insert(poles).values(**values, created=now_ms())
                ).inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError as err:
            raise Conflict(f"pole {values.get('code')!r} exists", code=values.get("code")) from err
        return self.get_pole(who, pid)

    def get_pole(self, who: Principal, pole_id: int) -> Pole:
        """One pole the caller may see, with the devices on it the caller may see."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(poles).where(poles.c.id == pole_id, self._visible_poles(who))
            ).first()
            if row is None:
                raise NotFound(f"pole {pole_id} not found", pole_id=pole_id)
            mounted = tuple(
                MountedDevice(r.id, r.name, DeviceKind(r.kind), r.port)
                for r in conn.execute(
                    select(devices.c.id, devices.c.name, devices.c.kind, devices.c.port)
                    .where(devices.c.pole_id == pole_id, self._visible_devices(who))
                    .order_by(devices.c.id)
                )
            )
        return pole_of(row, mounted)

    def pole_by_code(self, who: Principal, code: str) -> Pole:
        """One visible pole by its code."""
        with self.engine.connect() as conn:
            pid = conn.execute(
                select(poles.c.id).where(poles.c.code == code, self._visible_poles(who))
            ).scalar()
        if pid is None:
            raise NotFound(f"pole {code!r} not found", code=code)
        return self.get_pole(who, pid)

    def mount_pole(self, who: Principal, pole: int | str) -> int:
        """The id of a pole (by id or code) that ``who`` may mount devices on.

        A tenant mounts on poles it cannot see yet (a city pole, a pole it was granted), but
        not on another tenant's pole without its grant: that pole answers NotFound exactly as
        one that does not exist, so neither its existence nor its ports are revealed.
        """
        col = poles.c.id if isinstance(pole, int) else poles.c.code
        with self.engine.connect() as conn:
            pid = conn.execute(select(poles.c.id).where(col == pole)).scalar()
            if pid is not None and may_mount(conn, who, pid):
                return int(pid)
        what = pole if isinstance(pole, int) else repr(pole)
        raise NotFound(f"pole {what} not found", pole=pole)

    def pole_query(self, who: Principal, f: PoleFilter) -> Select[Any]:
        """A SELECT of the visible poles matching a filter (used by listings and geo); see
        :func:`pole_of` for its rows as values."""
        q = select(poles).where(self._visible_poles(who))
        if f.district:
            q = q.where(poles.c.district == f.district)
        if f.road:
            q = q.where(poles.c.road == f.road)
        if f.code_prefix:
            q = q.where(poles.c.code.startswith(f.code_prefix, autoescape=True))
        return q

    def list_poles(
        self, who: Principal, f: PoleFilter, limit: int = 100, offset: int = 0
    ) -> tuple[list[Pole], int]:
        """A page of visible poles (without their devices) and the total count."""
        q = self.pole_query(who, f)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(q.order_by(poles.c.code).limit(limit).offset(offset))
            return [pole_of(r) for r in rows], total

    def update_pole(self, who: Principal, pole_id: int, **values: Any) -> Pole:
        """Change a pole's fields (city operator only)."""
        who.require_city(Role.OPERATOR)
        check_not_null(values, ("code", "name", "lat", "lon", "district", "road"), "pole")
        check_pole(values)
        if not values:
            return self.get_pole(who, pole_id)
        try:
            with self.engine.begin() as conn:
                n = conn.execute(update(poles).where(poles.c.id == pole_id).values(**values))
        except IntegrityError as err:
            raise Conflict("pole code taken", code=values.get("code")) from err
        if not n.rowcount:
            raise NotFound(f"pole {pole_id} not found", pole_id=pole_id)
        return self.get_pole(who, pole_id)

    def delete_pole(self, who: Principal, pole_id: int, *, force: bool) -> None:
        """Remove a pole. While devices are mounted on it that is refused (Conflict, with
        ``mounted``) unless ``force``: then they stay registered, unmounted."""
        who.require_city(Role.ADMIN)
        with self.engine.begin() as conn:
            mounted = conn.execute(
                select(func.count()).select_from(devices).where(devices.c.pole_id == pole_id)
            ).scalar_one()
            if mounted and not force:
                code = conn.execute(select(poles.c.code).where(poles.c.id == pole_id)).scalar()
                what = "1 device" if mounted == 1 else f"{mounted} devices"
                raise Conflict(
                    f"pole {code!r} has {what} mounted", pole_id=pole_id, mounted=mounted
                )
            conn.execute(update(devices).where(devices.c.pole_id == pole_id).values(pole_id=None))
            if not conn.execute(delete(poles).where(poles.c.id == pole_id)).rowcount:
                raise NotFound(f"pole {pole_id} not found", pole_id=pole_id)

    # -- devices --------------------------------------------------------------------------
    def _owner(self, who: Principal, owner: int | str | None) -> int:
        if owner is None:
            return who.tenant_id
        with self.engine.connect() as conn:
            col = tenants.c.id if isinstance(owner, int) else tenants.c.name
            tid = conn.execute(select(tenants.c.id).where(col == owner)).scalar()
        if tid is None:
            raise InvalidInput(f"owner tenant {owner!r} not found", owner=owner)
        if tid != who.tenant_id and not who.is_operator:
            raise Forbidden("a tenant may register devices only for itself")
        return int(tid)

    def create_device(
        self,
        who: Principal,
        kind: DeviceKind,
        *,
        name: str | None = None,
        pole_id: int | None = None,
        owner: int | str | None = None,
        model: str = "",
        port: int | None = None,
        token: str | None = None,
        profile: str | None = None,
    ) -> tuple[Device, str]:
        """Register a device; returns it and its access token (shown only now). ``profile``:
        the ThingsBoard device type a gateway named it with."""
        who.require(Role.OPERATOR)
        if kind is DeviceKind.GENERIC and not profile:
            raise InvalidInput(
                "generic devices are created by gateways for a type smartpole does not know; "
                "register the device with its real kind",
                kind=str(kind),
            )
        owner_id = self._owner(who, owner)
        token = token or new_secret()
        if pole_id is not None:
            self.mount_pole(who, pole_id)
        try:
            with self.engine.begin() as conn:
                did = conn.execute(
                    insert(devices).values(
                        name=name or f"tmp-{new_secret(9)}",
                        kind=str(kind),
                        model=model,
                        profile=profile,
                        owner_id=owner_id,
                        pole_id=pole_id,
                        port=port,
                        token_hash=hash_secret(token),
                        token_hint=token_hint(token),
                        created=now_ms(),
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                if not name:
                    conn.execute(
                        update(devices).where(devices.c.id == did).values(name=f"{kind}-{did}")
                    )
                save_broker_hashes(conn, {did: token})
        except IntegrityError as err:
            raise device_taken(err, name, port) from err
        return self.get_device(who, did), token

    def create_devices(
        self, who: Principal, specs: list[dict[str, Any]]
    ) -> list[tuple[int, str, str]]:
        """Register many devices in one transaction; returns ``(id, name, token)`` each.

        Each spec has ``name``, ``kind``, ``owner`` (tenant name) and optionally ``pole_id``,
        ``port``, ``model``, ``token``.
        """
        who.require_city(Role.OPERATOR)
        with self.engine.connect() as conn:
            owners = {name: tid for name, tid in conn.execute(select(tenants.c.name, tenants.c.id))}
        rows, out = [], []
        created = now_ms()
        for spec in specs:
            if spec["owner"] not in owners:
                raise InvalidInput(f"owner tenant {spec['owner']!r} not found")
            token = spec.get("token") or new_secret()
            rows.append(
                {
                    "name": spec["name"],
                    "kind": str(DeviceKind(spec["kind"])),
                    "model": spec.get("model", ""),
                    "owner_id": owners[spec["owner"]],
                    "pole_id": spec.get("pole_id"),
                    "port": spec.get("port"),
                    "token_hash": hash_secret(token),
                    "token_hint": token_hint(token),
                    "created": created,
                }
            )
            out.append((spec["name"], token))
        try:
            with self.engine.begin() as conn:
                if rows:
                    conn.execute(insert(devices), rows)
                found = conn.execute(
                    select(devices.c.name, devices.c.id).where(
                        devices.c.name.in_([r["name"] for r in rows])
                    )
                )
                ids = {name: did for name, did in found}
                save_broker_hashes(conn, {ids[name]: token for name, token in out})
        except IntegrityError as err:
            raise device_taken(err) from err
        return [(ids[name], name, token) for name, token in out]

    def device_query(
        self,
        who: Principal,
        kind: str | None = None,
        owner: str | None = None,
        pole_id: int | None = None,
        district: str | None = None,
    ) -> Select[Any]:
        """A SELECT of visible devices (with owner and pole code) matching the filters: the
        columns of a :class:`~smartpole.model.devices.Device`."""
        q = (
            select(
                devices.c.id,
                devices.c.name,
                devices.c.kind,
                devices.c.model,
                devices.c.profile,
                devices.c.owner_id,
                tenants.c.name.label("owner"),
                devices.c.pole_id,
                poles.c.code.label("pole"),
                devices.c.port,
                devices.c.token_hint,
                devices.c.last_seen,
                devices.c.created,
            )
            .join(tenants, tenants.c.id == devices.c.owner_id)
            .outerjoin(poles, poles.c.id == devices.c.pole_id)
            .where(self._visible_devices(who))
        )
        if kind:
            q = q.where(devices.c.kind == kind)
        if owner:
            q = q.where(tenants.c.name == owner)
        if pole_id is not None:
            q = q.where(devices.c.pole_id == pole_id)
        if district:
            q = q.where(poles.c.district == district)
        return q

    def list_devices(
        self, who: Principal, limit: int = 100, offset: int = 0, **filters: Any
    ) -> tuple[list[Device], int]:
        """A page of visible devices and the total count."""
        q = self.device_query(who, **filters)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(q.order_by(devices.c.id).limit(limit).offset(offset))
            return [_device(r) for r in rows], total

    def device_ids(self, who: Principal, **filters: Any) -> list[int]:
        """Ids of every visible device matching the filters."""
        q = self.device_query(who, **filters).with_only_columns(devices.c.id)
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    def device_presence(self, who: Principal) -> list[tuple[int, str, int | None]]:
        """(id, kind, last seen) of every visible device: what online counts are made of."""
        q = self.device_query(who).with_only_columns(
            devices.c.id, devices.c.kind, devices.c.last_seen
        )
        with self.engine.connect() as conn:
            return [(r.id, r.kind, r.last_seen) for r in conn.execute(q)]

    def air_devices(self, who: Principal) -> dict[str, list[int]]:
        """The visible air sensors on poles, by their pole's district."""
        q = self.device_query(who, kind=DeviceKind.AIR.value).with_only_columns(
            devices.c.id, poles.c.district
        )
        out: dict[str, list[int]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q.where(poles.c.district.is_not(None))):
                out.setdefault(r.district, []).append(r.id)
        return out

    def get_device(self, who: Principal, device_id: int) -> Device:
        """One visible device."""
        q = self.device_query(who).where(devices.c.id == device_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"device {device_id} not found", device_id=device_id)
        return _device(row)

    def update_device(
        self, who: Principal, device_id: int, kind: DeviceKind | None = None, **values: Any
    ) -> Device:
        """Change a visible device's name, model, pole, port or owner, and (see
        :meth:`set_kind`) its kind, all in one transaction or none."""
        who.require(Role.OPERATOR)
        device = self.get_device(who, device_id)
        check_not_null(values, ("name", "model", "owner"), "device")
        if kind is not None and kind != device.kind:
            _check_rekind(who, device, kind)
            values["kind"] = str(kind)
        if not values:
            return device
        if values.get("pole_id") is not None:
            self.mount_pole(who, values["pole_id"])
        if "owner" in values:
            values["owner_id"] = self._owner(who, values.pop("owner"))
        try:
            with self.engine.begin() as conn:
                conn.execute(update(devices).where(devices.c.id == device_id).values(**values))
        except IntegrityError as err:
            raise device_taken(err, values.get("name"), values.get("port")) from err
        self._forget(device_id)
        return self.get_device(who, device_id)

    def set_kind(self, who: Principal, device_id: int, kind: DeviceKind) -> Device:
        """Give a generic device (one a gateway created for a type smartpole does not know) its
        real kind; admins only. A device of a known kind keeps it: its readings, rules and
        commands are that kind's, so a wrong one is deleted and registered again."""
        return self.update_device(who, device_id, kind=kind)

    def delete_device(self, who: Principal, device_id: int) -> None:
        """Remove a visible device and its attributes (its readings age out by retention)."""
        who.require(Role.OPERATOR)
        self.get_device(who, device_id)
        with self.engine.begin() as conn:
            conn.execute(delete(attributes).where(attributes.c.device_id == device_id))
            conn.execute(delete(devices).where(devices.c.id == device_id))
        self._forget(device_id)

    def rotate_token(self, who: Principal, device_id: int, token: str | None = None) -> str:
        """Give a device a new access token; the old one stops working at once."""
        who.require(Role.OPERATOR)
        self.get_device(who, device_id)
        token = token or new_secret()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(devices)
                    .where(devices.c.id == device_id)
                    .values(token_hash=hash_secret(token), token_hint=token_hint(token))
                )
                save_broker_hashes(conn, {device_id: token})
        except IntegrityError as err:
            raise device_taken(err) from err
        self._forget(device_id)
        return token

    def _forget(self, device_id: int) -> None:
        with self._lock:
            for h in [h for h, (_, ref) in self._tokens.items() if ref.id == device_id]:
                del self._tokens[h]

    def device_by_token(self, token: str) -> DeviceRef | None:
        """The device an access token belongs to (cached briefly), or None."""
        h = hash_secret(token)
        hit = self._tokens.get(h)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        ref = self._ref(devices.c.token_hash == h)
        if ref is None:
            return None
        with self._lock:
            if len(self._tokens) > 200_000:
                self._tokens.clear()
            self._tokens[h] = (time.monotonic() + TOKEN_CACHE_S, ref)
        return ref

    def device_ref(self, device_id: int) -> DeviceRef | None:
        """A device by its id, for the transports, or None."""
        return self._ref(devices.c.id == device_id)

    def device_by_name(self, name: str) -> DeviceRef | None:
        """A device by its unique name (gateways name their sub-devices), or None."""
        return self._ref(devices.c.name == name)

    def gateway_devices(
        self, gateway: DeviceRef, names: list[str]
    ) -> tuple[dict[str, DeviceRef], dict[str, str]]:
        """Which of the devices ``names`` a gateway may speak for, and why not the others.

        The one rule of every transport's gateway API: a gateway speaks only for devices on
        its own pole (never for itself) that its own tenant owns, or that their owner bound
        to it (:mod:`smartpole.registry.grants`); a city operator's gateway for every device
        on its pole. Returns ``(allowed, refused)``: the devices by name, and the reason for
        each registered device refused; names of no device are in neither.
        """
        [answer] = self.gateways_devices([(gateway, names)])
        return answer

    def gateways_devices(
        self, asks: Sequence[tuple[DeviceRef, Sequence[str]]]
    ) -> list[tuple[dict[str, DeviceRef], dict[str, str]]]:
        """:meth:`gateway_devices` for several gateways at once (every gateway asks after a
        restart), in two or three queries whatever their number."""
        return gateways_devices(self.engine, asks)

    def _ref(self, condition: Any) -> DeviceRef | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*REF_COLUMNS).where(condition)).first()
        return None if row is None else ref_of(row)

    # -- attributes -----------------------------------------------------------------------
    def set_attributes(self, device_id: int, scope: Scope, values: dict[str, Any]) -> None:
        """Upsert attributes of one scope (the caller has checked access)."""
        errors = key_errors(values, "body")
        if errors:
            raise InvalidInput(
                f"{len(errors)} invalid attribute key(s); nothing was stored ({errors[0]['msg']})",
                errors=errors[:50],
            )
        if not values:
            return
        ts = now_ms()
        rows = [
            {
                "device_id": device_id,
                "scope": str(scope),
                "key": k,
                "value": orjson.dumps(v).decode(),
                "updated": ts,
            }
            for k, v in values.items()
        ]
        with self.engine.begin() as conn:
            put_rows(conn, attributes, ["device_id", "scope", "key"], rows)

    def get_attributes(
        self, device_id: int, scopes: list[Scope] | None = None, keys: list[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Attributes by scope: ``{"shared": {"key": {"value": v, "updated": ts}}}``."""
        return self.attributes_of([device_id], scopes, keys).get(device_id, {})

    def attributes_of(
        self,
        device_ids: Sequence[int],
        scopes: list[Scope] | None = None,
        keys: list[str] | None = None,
    ) -> dict[int, dict[str, dict[str, Any]]]:
        """:meth:`get_attributes` of several devices, by device id (those with none left out):
        every gateway asks for its attributes as it reconnects after a restart."""
        out: dict[int, dict[str, dict[str, Any]]] = {}
        ids = list(dict.fromkeys(device_ids))
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = select(attributes).where(attributes.c.device_id.in_(ids[i : i + 500]))
                if scopes:
                    q = q.where(attributes.c.scope.in_([str(s) for s in scopes]))
                if keys:
                    q = q.where(attributes.c.key.in_(keys))
                for r in conn.execute(q.order_by(attributes.c.device_id, attributes.c.key)):
                    out.setdefault(r.device_id, {}).setdefault(r.scope, {})[r.key] = {
                        "value": orjson.loads(r.value),
                        "updated": r.updated,
                    }
        return out

    def delete_attributes(self, device_id: int, scope: Scope, keys: list[str]) -> int:
        """Remove attributes of one scope; returns how many went."""
        with self.engine.begin() as conn:
            return conn.execute(
                delete(attributes).where(
                    attributes.c.device_id == device_id,
                    attributes.c.scope == str(scope),
                    attributes.c.key.in_(keys),
                )
            ).rowcount


def parse_date(value: str | date | None) -> date | None:
    """An ISO date, or None for empty."""
    if value is None or isinstance(value, date):
        return value
    value = value.strip()
    return date.fromisoformat(value) if value else None


def _check_rekind(who: Principal, device: Device, kind: DeviceKind) -> None:
    """Only an admin changes a kind, only a generic device's, and never to generic."""
    who.require(Role.ADMIN)
    if device.kind != DeviceKind.GENERIC:
        raise Conflict(
            f"device {device.id} is a {device.kind}: only a generic device can change its "
            "kind (delete it and register it again)",
            kind=str(device.kind),
        )
    if kind is DeviceKind.GENERIC:
        raise InvalidInput("a device cannot be made generic; only gateways create those")
