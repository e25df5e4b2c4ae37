"""Firmware packages and their assignment to devices: ThingsBoard's OTA updates over MQTT.

A package (title, version, device kind, bytes, checksum) is stored in the database. Assigning
one to a device writes the shared attributes ``fw_title``, ``fw_version``, ``fw_size``,
``fw_checksum`` and ``fw_checksum_algorithm``; the device then fetches it in chunks
(``v2/fw/request/{id}/chunk/{n}``) and reports its progress as the telemetry ``fw_state``.
"""

from __future__ import annotations

import builtins
import collections
import hashlib
import threading
import zlib
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceKind, Role, Scope
from smartpole.registry.access import Principal
from smartpole.registry.assets import Assets
from smartpole.store.database import put_rows
from smartpole.store.schema import metadata, tenants

__all__ = [
    "ALGORITHMS",
    "FW_KEYS",
    "REPORTED_KEYS",
    "Firmware",
    "checksum",
    "device_firmware",
    "firmware",
]

firmware = Table(
    "firmware",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("checksum_algorithm", String(16), nullable=False),
    Column("checksum", String(128), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "title", "version", name="uq_firmware_title_version"),
)

device_firmware = Table(
    "device_firmware",
    metadata,
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("firmware_id", Integer, ForeignKey("firmware.id", ondelete="CASCADE"), nullable=False),
    Column("assigned", BigInteger, nullable=False),
)

ALGORITHMS = ("SHA256", "SHA384", "SHA512", "MD5", "CRC32")
FW_KEYS = ("fw_title", "fw_version", "fw_size", "fw_checksum", "fw_checksum_algorithm")
REPORTED_KEYS = ("current_fw_title", "current_fw_version", "fw_state", "fw_error")
CACHED_BYTES = 64 * 1024 * 1024  # packages kept in memory for chunk requests, at most
META = [c for c in firmware.c if c.name != "data"]


def checksum(algorithm: str, data: bytes) -> str:
    """The checksum of ``data`` as ThingsBoard writes it in ``fw_checksum`` (lowercase hex).

    CRC32 is its four bytes little-endian, as ThingsBoard (Guava's ``HashCode``) prints it.
    """
    alg = algorithm.upper()
    if alg == "CRC32":
        return (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "little").hex()
    if alg not in ALGORITHMS:
        raise InvalidInput(
            f"checksum algorithm {algorithm!r} is not supported", algorithms=list(ALGORITHMS)
        )
    return hashlib.new(alg.lower(), data).hexdigest()


class Firmware:
    """The firmware repository, assignments, and chunks for the MQTT transport."""

    def __init__(self, engine: Engine, assets: Assets, max_bytes: int) -> None:
        self.engine = engine
        self.assets = assets
        self.max_bytes = max_bytes
        self._blobs: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._lock = threading.Lock()

    # -- packages -------------------------------------------------------------------------
    @staticmethod
    def _visible(who: Principal) -> Any:
        return True if who.is_operator else firmware.c.tenant_id == who.tenant_id

    def upload(
        self,
        who: Principal,
        *,
        title: str,
        version: str,
        kind: DeviceKind,
        data: bytes,
        algorithm: str = "SHA256",
        expected: str | None = None,
    ) -> dict[str, Any]:
        """Store a package (operator); ``expected`` is a checksum to verify the upload by."""
        who.require(Role.OPERATOR)
        if not data:
            raise InvalidInput("the firmware package is empty")
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(
                f"firmware of {len(data)} bytes exceeds the {self.max_bytes}-byte limit",
                limit=self.max_bytes,
            )
        alg = algorithm.upper()
        value = checksum(alg, data)
        if expected is not None and expected.lower() != value:
            raise InvalidInput(
                f"the upload's {alg} is {value}, not {expected}: the package is damaged",
                checksum=value,
            )
        try:
            with self.engine.begin() as conn:
                fid = conn.execute(
                    insert(firmware).values(
                        tenant_id=who.tenant_id,
                        title=title,
                        version=version,
                        kind=str(kind),
                        size=len(data),
                        checksum_algorithm=alg,
                        checksum=value,
                        data=data,
                        created=now_ms(),
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError as err:
            raise Conflict(
                f"firmware {title!r} version {version!r} exists", name=title, version=version
            ) from err
        return self.get(who, fid)

    def list(self, who: Principal, kind: str | None = None) -> builtins.list[dict[str, Any]]:
        """The packages the caller may see, newest first, without their bytes."""
        q = (
            select(*META, tenants.c.name.label("owner"))
            .join(tenants, tenants.c.id == firmware.c.tenant_id)
            .where(self._visible(who))
        )
        if kind:
            q = q.where(firmware.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(firmware.c.id.desc()))]

    def get(self, who: Principal, firmware_id: int) -> dict[str, Any]:
        """One visible package, without its bytes."""
        q = (
            select(*META, tenants.c.name.label("owner"))
            .join(tenants, tenants.c.id == firmware.c.tenant_id)
            .where(firmware.c.id == firmware_id, self._visible(who))
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"firmware {firmware_id} not found", firmware_id=firmware_id)
        return dict(row._mapping)

    def data(self, who: Principal, firmware_id: int) -> bytes:
        """The bytes of one visible package."""
        self.get(who, firmware_id)
        return self._blob(firmware_id)

    def delete(self, who: Principal, firmware_id: int) -> None:
        """Remove a package no device is assigned (operator)."""
        who.require(Role.OPERATOR)
        self.get(who, firmware_id)
        with self.engine.begin() as conn:
            used = conn.execute(
                select(func.count())
                .select_from(device_firmware)
                .where(device_firmware.c.firmware_id == firmware_id)
            ).scalar_one()
            if used:
                raise Conflict(f"firmware {firmware_id} is assigned to {used} devices", used=used)
            conn.execute(delete(firmware).where(firmware.c.id == firmware_id))
        with self._lock:
            self._blobs.pop(firmware_id, None)

    # -- assignment -----------------------------------------------------------------------
    def assign(self, who: Principal, device_id: int, firmware_id: int) -> dict[str, Any]:
        """Assign a package to a visible device; returns the shared attributes written."""
        who.require(Role.OPERATOR)
        device = self.assets.get_device(who, device_id)
        fw = self.get(who, firmware_id)
        if fw["kind"] != device.kind:
            raise InvalidInput(
                f"firmware {firmware_id} is for {fw['kind']} devices, device {device_id} is a "
                f"{device.kind}"
            )
        row = {"device_id": device_id, "firmware_id": firmware_id, "assigned": now_ms()}
        with self.engine.begin() as conn:
            put_rows(conn, device_firmware, ["device_id"], [row])
        shared = {
            "fw_title": fw["title"],
            "fw_version": fw["version"],
            "fw_size": fw["size"],
            "fw_checksum": fw["checksum"],
            "fw_checksum_algorithm": fw["checksum_algorithm"],
        }
        self.assets.set_attributes(device_id, Scope.SHARED, shared)
        return shared

    def unassign(self, who: Principal, device_id: int) -> None:
        """Take a visible device's package away (and its ``fw_*`` shared attributes)."""
        who.require(Role.OPERATOR)
        self.assets.get_device(who, device_id)
        with self.engine.begin() as conn:
            conn.execute(delete(device_firmware).where(device_firmware.c.device_id == device_id))
        self.assets.delete_attributes(device_id, Scope.SHARED, list(FW_KEYS))

    def assigned(self, device_id: int) -> dict[str, Any] | None:
        """The package assigned to a device (with ``assigned``, the time), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*META, device_firmware.c.assigned)
                .join(device_firmware, device_firmware.c.firmware_id == firmware.c.id)
                .where(device_firmware.c.device_id == device_id)
            ).first()
        return dict(row._mapping) if row is not None else None

    # -- chunks ---------------------------------------------------------------------------
    def _blob(self, firmware_id: int) -> bytes:
        with self._lock:
            blob = self._blobs.get(firmware_id)
            if blob is not None:
                self._blobs.move_to_end(firmware_id)
                return blob
        with self.engine.connect() as conn:
            blob = bytes(
                conn.execute(
                    select(firmware.c.data).where(firmware.c.id == firmware_id)
                ).scalar_one()
            )
        with self._lock:
            self._blobs[firmware_id] = blob
            while sum(len(b) for b in self._blobs.values()) > CACHED_BYTES and len(self._blobs) > 1:
                self._blobs.popitem(last=False)
        return blob

    def chunk(self, device_id: int, size: int, index: int) -> bytes | None:
        """Chunk ``index`` of ``size`` bytes of the device's package (all of it for size 0).

        None when no package is assigned; empty past the end, as ThingsBoard answers.
        """
        with self.engine.connect() as conn:
            fid = conn.execute(
                select(device_firmware.c.firmware_id).where(
                    device_firmware.c.device_id == device_id
                )
            ).scalar()
        if fid is None:
            return None
        blob = self._blob(fid)
        if size <= 0:
            return blob
        return blob[size * index : size * (index + 1)]
