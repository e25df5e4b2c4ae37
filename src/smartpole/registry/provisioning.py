"""Device provisioning as ThingsBoard does it: a profile's key and secret buy credentials.

A provision profile belongs to a tenant and says which kind of device it provisions, whether it
may create new devices and/or hand credentials to devices registered in advance (by name), and
on which pole new devices go. Answers are ThingsBoard's: ``SUCCESS`` with credentials,
``NOT_FOUND`` for an unknown key or a wrong secret, ``FAILURE`` for everything else, so that a
device learns nothing about other tenants' devices.
"""

from __future__ import annotations

import builtins
import hmac
import logging
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, InvalidInput, NotFound, SmartpoleError
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceKind, Role, Scope
from smartpole.registry.access import Principal, hash_secret, new_secret, token_hint
from smartpole.registry.assets import Assets, check_not_null
from smartpole.registry.credentials import Credentials, check_basic
from smartpole.store.schema import metadata, poles, tenants

__all__ = ["FAILURE", "NOT_FOUND", "PROVISION_STATE", "Provisioning", "provision_profiles"]

log = logging.getLogger(__name__)

provision_profiles = Table(
    "provision_profiles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("key", String(128), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("secret_hint", String(8), nullable=False),
    Column("create_new", Boolean, nullable=False),
    Column("pre_registered", Boolean, nullable=False),
    Column("pole_id", Integer, ForeignKey("poles.id", ondelete="SET NULL")),
    Column("created", BigInteger, nullable=False),
)

PROVISION_STATE = "provisionState"  # server attribute, as ThingsBoard names it
NOT_FOUND = {"status": "NOT_FOUND", "errorMsg": "Provision data was not found!"}
FAILURE = {"status": "FAILURE", "errorMsg": "Failed to provision device!"}


class _Refused(Exception):
    """A provision request that gets NOT_FOUND or FAILURE; ``why`` goes to the log only."""

    def __init__(self, answer: dict[str, str], why: str) -> None:
        super().__init__(why)
        self.answer = answer


class Provisioning:
    """Provision profiles (REST) and the provision request (MQTT and HTTP)."""

    def __init__(self, engine: Engine, assets: Assets, credentials: Credentials) -> None:
        self.engine = engine
        self.assets = assets
        self.credentials = credentials

    # -- profiles -------------------------------------------------------------------------
    def _query(self) -> Any:
        return (
            select(
                provision_profiles.c.id,
                provision_profiles.c.tenant_id,
                tenants.c.name.label("owner"),
                provision_profiles.c.name,
                provision_profiles.c.kind,
                provision_profiles.c.key,
                provision_profiles.c.secret_hint,
                provision_profiles.c.create_new,
                provision_profiles.c.pre_registered,
                provision_profiles.c.pole_id,
                poles.c.code.label("pole"),
                provision_profiles.c.created,
            )
            .join(tenants, tenants.c.id == provision_profiles.c.tenant_id)
            .outerjoin(poles, poles.c.id == provision_profiles.c.pole_id)
        )

    def create(
        self,
        who: Principal,
        *,
        name: str,
        kind: DeviceKind,
        create_new: bool,
        pre_registered: bool,
        pole: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        owner: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Add a profile (admin); returns it and its secret, shown only now."""
        who.require(Role.ADMIN)
        tenant_id = self.assets._owner(who, owner)
        pole_id = self.assets.mount_pole(who, pole) if pole else None
        key = key or new_secret(15)
        secret = secret or new_secret(15)
        try:
            with self.engine.begin() as conn:
                pid = conn.execute(
                    insert(provision_profiles).values(
                        tenant_id=tenant_id,
                        name=name,
                        kind=str(kind),
                        key=key,
                        secret_hash=hash_secret(secret),
                        secret_hint=token_hint(secret),
                        create_new=create_new,
                        pre_registered=pre_registered,
                        pole_id=pole_id,
                        created=now_ms(),
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError as err:
            raise Conflict("that provision key is taken") from err
        return self.get(who, pid), secret

    def list(self, who: Principal) -> builtins.list[dict[str, Any]]:
        """The caller's tenant's profiles (every tenant's for the city operator)."""
        who.require(Role.ADMIN)
        q = self._query().order_by(provision_profiles.c.id)
        if not who.is_operator:
            q = q.where(provision_profiles.c.tenant_id == who.tenant_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def get(self, who: Principal, profile_id: int) -> dict[str, Any]:
        """One profile of the caller's tenant (any for the city operator)."""
        who.require(Role.ADMIN)
        q = self._query().where(provision_profiles.c.id == profile_id)
        if not who.is_operator:
            q = q.where(provision_profiles.c.tenant_id == who.tenant_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"provision profile {profile_id} not found", profile_id=profile_id)
        return dict(row._mapping)

    def update(self, who: Principal, profile_id: int, **values: Any) -> dict[str, Any]:
        """Change a profile's name, kind, flags, pole or secret."""
        check_not_null(values, ("name", "kind", "create_new", "pre_registered"), "profile")
        self.get(who, profile_id)
        if "pole" in values:
            pole = values.pop("pole")
            values["pole_id"] = self.assets.mount_pole(who, pole) if pole else None
        if "kind" in values:
            values["kind"] = str(values["kind"])
        if values:
            with self.engine.begin() as conn:
                conn.execute(
                    update(provision_profiles)
                    .where(provision_profiles.c.id == profile_id)
                    .values(**values)
                )
        return self.get(who, profile_id)

    def delete(self, who: Principal, profile_id: int) -> None:
        """Remove a profile; the devices it provisioned stay."""
        self.get(who, profile_id)
        with self.engine.begin() as conn:
            conn.execute(delete(provision_profiles).where(provision_profiles.c.id == profile_id))

    # -- the provision request ------------------------------------------------------------
    def provision(self, request: Any) -> dict[str, Any]:
        """Answer a ThingsBoard provision request (the decoded JSON body)."""
        try:
            answer = self._provision(request)
        except _Refused as err:
            log.warning("provisioning refused (%s): %s", err.answer["status"], err)
            return dict(err.answer)
        log.info("provisioned device %r", request.get("deviceName"))
        return answer

    def _provision(self, req: Any) -> dict[str, Any]:
        if not isinstance(req, dict):
            raise _Refused(FAILURE, "the request is not a JSON object")
        name = req.get("deviceName")
        if name is not None:
            name = str(name).strip()
            if not name or len(name) > 200:
                raise _Refused(FAILURE, "empty or over-long device name")
        key, secret = req.get("provisionDeviceKey"), req.get("provisionDeviceSecret")
        if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
            raise _Refused(NOT_FOUND, "no provision key or secret")
        with self.engine.connect() as conn:
            profile = conn.execute(
                select(provision_profiles, tenants.c.is_operator)
                .join(tenants, tenants.c.id == provision_profiles.c.tenant_id)
                .where(provision_profiles.c.key == key)
            ).first()
        if profile is None or not hmac.compare_digest(hash_secret(secret), profile.secret_hash):
            raise _Refused(NOT_FOUND, f"unknown provision key {key[:4]}… or wrong secret")
        if not (profile.create_new or profile.pre_registered):
            raise _Refused(NOT_FOUND, f"provision profile {profile.id} is disabled")
        wanted = _wanted_credentials(req)
        # the profile's tenant, as its operator: the pole rule holds for it at every request
        who = Principal(profile.tenant_id, "", Role.OPERATOR, bool(profile.is_operator))
        existing = self.assets.device_by_name(name) if name else None
        if existing is not None:
            if existing.owner_id != profile.tenant_id or str(existing.kind) != profile.kind:
                raise _Refused(FAILURE, f"device {name!r} is not the profile's tenant's or kind")
            if not profile.pre_registered:
                raise _Refused(FAILURE, f"device {name!r} exists and the profile only creates")
            state = self.assets.get_attributes(existing.id, [Scope.SERVER], [PROVISION_STATE])
            if state.get("server", {}).get(PROVISION_STATE, {}).get("value") == "provisioned":
                raise _Refused(FAILURE, f"device {name!r} was provisioned already")
            device_id, issued = existing.id, None
        else:
            if not profile.create_new:
                raise _Refused(FAILURE, f"no pre-registered device {name!r}")
            token = wanted.get("token") if wanted["type"] == "ACCESS_TOKEN" else None
            try:
                device, issued = self.assets.create_device(
                    who, DeviceKind(profile.kind), name=name, pole_id=profile.pole_id, token=token
                )
            except SmartpoleError as err:
                raise _Refused(FAILURE, f"cannot create {name!r}: {err}") from err
            device_id = device.id
            log.info("provision profile %d created device %d (%s)", profile.id, device_id, name)
        try:
            answer = self._issue(who, device_id, wanted, issued)
        except SmartpoleError as err:
            if existing is None:
                self.assets.delete_device(who, device_id)
            raise _Refused(FAILURE, f"cannot set credentials of {name!r}: {err}") from err
        self.assets.set_attributes(device_id, Scope.SERVER, {PROVISION_STATE: "provisioned"})
        return answer

    def _issue(
        self, who: Principal, device_id: int, wanted: dict[str, Any], issued: str | None
    ) -> dict[str, Any]:
        if wanted["type"] == "MQTT_BASIC":
            self.credentials.use_mqtt_basic(
                who, device_id, wanted["clientId"], wanted["userName"], wanted["password"]
            )
            value: Any = {
                "clientId": wanted["clientId"],
                "userName": wanted["userName"],
                "password": wanted["password"],
            }
            return {"status": "SUCCESS", "credentialsType": "MQTT_BASIC", "credentialsValue": value}
        # a new device has its token; a pre-registered one gets a new one (the old is unknown)
        new = issued or self.credentials.use_access_token(who, device_id, wanted["token"])
        return {"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": new}


def _wanted_credentials(req: dict[str, Any]) -> dict[str, Any]:
    """The credentials a provision request asks for (an access token when it names none)."""
    kind = req.get("credentialsType") or "ACCESS_TOKEN"
    if kind == "ACCESS_TOKEN":
        token = req.get("token")
        if token is not None and (not isinstance(token, str) or not 8 <= len(token) <= 128):
            raise _Refused(FAILURE, "the token asked for is not 8 to 128 characters")
        return {"type": kind, "token": token or None}
    if kind == "MQTT_BASIC":
        parts = {k: req.get(k) for k in ("clientId", "username", "password")}
        if any(v is not None and not isinstance(v, str) for v in parts.values()):
            raise _Refused(FAILURE, "MQTT Basic credentials must be strings")
        try:
            check_basic(parts["clientId"], parts["username"], parts["password"])
        except InvalidInput as err:
            raise _Refused(FAILURE, str(err)) from err
        return {
            "type": kind,
            "clientId": parts["clientId"] or None,
            "userName": parts["username"] or None,
            "password": parts["password"] or None,
        }
    raise _Refused(FAILURE, f"credentials type {kind!r} is not supported")
