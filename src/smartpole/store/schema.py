"""Tables of the store, declared once for both engines (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from smartpole.model.types import MAX_KEY_LENGTH

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("title", String(200), nullable=False, server_default=""),
    Column("is_operator", Boolean, nullable=False, server_default="0"),
    Column("created", BigInteger, nullable=False),
    # IANA time zone of the tenant's daily buckets; NULL: the hub's (Settings.hub_timezone)
    Column("timezone", String(64)),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("prefix", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created", BigInteger, nullable=False),
    Column("revoked", BigInteger),
)

poles = Table(
    "poles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("height_m", Float),
    Column("district", String(100), nullable=False, server_default=""),
    Column("road", String(200), nullable=False, server_default=""),
    Column("installed", Date),
    Column("created", BigInteger, nullable=False),
    Index("ix_poles_lat_lon", "lat", "lon"),
    Index("ix_poles_district_road", "district", "road"),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("model", String(200), nullable=False, server_default=""),
    Column("profile", String(200)),  # the ThingsBoard device type a gateway created it with
    Column("owner_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("pole_id", Integer, ForeignKey("poles.id", ondelete="SET NULL")),
    Column("port", SmallInteger),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_hint", String(8), nullable=False),
    Column("last_seen", BigInteger),
    Column("created", BigInteger, nullable=False),
    Index("ix_devices_pole", "pole_id"),
    Index("ix_devices_owner_kind", "owner_id", "kind"),
    UniqueConstraint("pole_id", "port", name="uq_devices_pole_port"),
)

attributes = Table(
    "attributes",
    metadata,
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("scope", String(8), primary_key=True),
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("value", Text, nullable=False),  # JSON text
    Column("updated", BigInteger, nullable=False),
)

# vtype: 0 number, 1 boolean (num is 0/1), 2 string (txt), 3 JSON (txt)
readings = Table(
    "readings",
    metadata,
    Column("device_id", Integer, primary_key=True),
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("vtype", SmallInteger, nullable=False),
    Column("num", Float),
    Column("txt", Text),
    sqlite_with_rowid=False,
    postgresql_partition_by="RANGE (ts)",
)

latest = Table(
    "latest",
    metadata,
    Column("device_id", Integer, primary_key=True),
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("vtype", SmallInteger, nullable=False),
    Column("num", Float),
    Column("txt", Text),
    sqlite_with_rowid=False,
)

# Hourly rollups of numeric and boolean readings, kept exact in the write transaction.
rollups = Table(
    "rollups",
    metadata,
    Column("device_id", Integer, primary_key=True),
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("cnt", BigInteger, nullable=False),
    Column("sum", Float, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    sqlite_with_rowid=False,
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", Integer, nullable=False),
    Column("key", String(MAX_KEY_LENGTH), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("value", Text, nullable=False),  # JSON text, as the device sent it
    Column("quality", SmallInteger, nullable=False),
    Column("reason", String(300), nullable=False),
    Column("received", BigInteger, nullable=False),
    Index("ix_quarantine_device_ts", "device_id", "ts"),
)

retention = Table(
    "retention",
    metadata,
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("days", Integer, nullable=False),
)

# A committed batch whose latest state and rollups are still only in the writer's memory. Its
# ``journal`` holds the batch's hourly partials: whoever deletes the mark adds them to the
# rollups in the same transaction (see SeriesStore). ``id`` never reuses a deleted one.
derived_pending = Table(
    "derived_pending",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("node", String(64), nullable=False),
    Column("min_ts", BigInteger, nullable=False),
    Column("max_ts", BigInteger, nullable=False),
    Column("journal", LargeBinary, nullable=False),
    Index("ix_derived_pending_node", "node", "id"),
    sqlite_autoincrement=True,
)

# Commands to devices (server-side RPC). ``request_id`` is the per-device id used on the wire;
# ``expires`` is when the command gives up in its current state: unsent by then (queued), or
# unanswered/undelivered by then (sent, delivered: sent + ``timeout``).
commands = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("request_id", Integer, nullable=False),
    Column("method", String(128), nullable=False),
    Column("params", Text, nullable=False),  # JSON text
    Column("oneway", Boolean, nullable=False),
    Column("persistent", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("timeout", Integer, nullable=False),  # ms to wait for delivery/reply once sent
    Column("created", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("sent", BigInteger),
    Column("delivered", BigInteger),
    Column("completed", BigInteger),
    Column("response", Text),  # JSON text
    Column("error", String(500)),
    Column("retries", Integer, nullable=False, server_default="0"),
    Index("ix_commands_device_status", "device_id", "status"),
    Index("ix_commands_status_expires", "status", "expires"),
    UniqueConstraint("device_id", "request_id", name="uq_commands_device_request"),
)

# People who log in to the console. ``name`` is the login name, unique across tenants; the
# password is kept only as an argon2id hash (registry.users).
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("created", BigInteger, nullable=False),
    Column("last_login", BigInteger),
    Column("updated", BigInteger, nullable=False),
    Index("ix_users_tenant", "tenant_id"),
)

# A user's logins: ``id`` is the SHA-256 of the cookie's secret, never the secret itself.
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=False),  # the absolute lifetime's end
    Column("last_seen", BigInteger, nullable=False),  # the idle timeout counts from here
    Column("address", String(64), nullable=False, server_default=""),
    Index("ix_user_sessions_user", "user_id"),
)

# What callers changed. Rows are only ever inserted: the database refuses UPDATE and DELETE
# (triggers of migration 0015). No foreign keys: an entry outlives its tenant, user or key.
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("tenant_id", Integer),
    Column("actor_type", String(8), nullable=False),  # user | apikey | cli
    Column("actor_id", Integer),
    Column("actor_name", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target_type", String(64)),
    Column("target_id", String(200)),
    Column("detail", Text, nullable=False, server_default="{}"),  # JSON text
    Column("address", String(64), nullable=False, server_default=""),
    Column("status", SmallInteger, nullable=False),
    Index("ix_audit_ts", "ts"),
    Index("ix_audit_tenant_ts", "tenant_id", "ts"),
)
