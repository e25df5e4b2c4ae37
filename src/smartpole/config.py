"""Settings, declared once: environment (``SMARTPOLE_*``), CLI options and defaults.

Every field is documented in ``docs/configuration.md``; ``tests/test_docs.py`` checks it.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """One object that every part of smartpole receives; never read the environment elsewhere."""

    model_config = SettingsConfigDict(env_prefix="SMARTPOLE_", extra="ignore")

    data_dir: Path = Field(Path("./smartpole-data"), description="Embedded store directory.")
    db: str | None = Field(
        None, description="PostgreSQL URL (postgresql://user@host:port/db); unset = embedded."
    )
    host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP API port.")
    mqtt_port: int = Field(
        1883, ge=-1, le=65535, description="MQTT port (0 picks a free one, -1 turns MQTT off)."
    )
    mqtt_tls_cert: Path | None = Field(
        None, description="PEM certificate (chain) for MQTT over TLS; with mqtt_tls_key."
    )
    mqtt_tls_key: Path | None = Field(None, description="PEM private key for MQTT over TLS.")
    mqtt_tls_port: int = Field(8883, ge=0, le=65535, description="MQTT over TLS port.")
    mqtt_ws_port: int = Field(
        -1, ge=-1, le=65535, description="MQTT over WebSocket port (0 picks a free one, -1 off)."
    )
    mqtt_max_payload: int = Field(
        65_536, ge=256, description="Largest MQTT PUBLISH payload a device may send (bytes)."
    )
    mqtt_max_inflight: int = Field(
        100, ge=1, le=65_535, description="QoS 1 messages a device may have unacknowledged."
    )
    mqtt_rate: int = Field(
        1000, ge=1, description="Messages per second one MQTT session may send (burst: 2x)."
    )
    firmware_max_bytes: int = Field(
        33_554_432, ge=1024, description="Largest firmware package one may upload (bytes)."
    )
    claim_allowed_by_default: bool = Field(
        True,
        description="Any device may open a claim; False: only those with claimingAllowed=true.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest HTTP ingest body accepted (bytes)."
    )
    batch_size: int = Field(
        20_000, ge=1, description="Readings written in one transaction at most."
    )
    batch_age_ms: int = Field(
        10, ge=0, description="How long the pipeline waits to fill a batch (ms)."
    )
    queue_readings: int = Field(
        200_000, ge=1000, description="Readings the pipeline holds before it refuses (503)."
    )
    derived_flush_ms: int = Field(
        1000,
        ge=0,
        description="How often latest state and rollups are written (ms); 0 = with every batch.",
    )
    node_id: str = Field(
        default_factory=socket.gethostname,
        max_length=64,
        description="This node's name; unique per node sharing one PostgreSQL database.",
    )
    inactivity_timeout_s: int = Field(
        600, ge=1, description="A device with no reading for this long is shown offline."
    )
    live_queue: int = Field(
        1000, ge=1, description="Messages waiting per console live socket before the oldest go."
    )
    broker: str | None = Field(
        None, description="External MQTT 5 broker (mqtt://host:1883, mqtts://…); set = broker mode."
    )
    broker_username: str = Field("smartpole", description="smartpole's user name at the broker.")
    broker_password: str | None = Field(None, description="smartpole's password at the broker.")
    broker_group: str = Field(
        "smartpole",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Shared-subscription group of the nodes ($share/<group>/...).",
    )
    broker_session_expiry_s: int = Field(
        86_400, ge=60, description="How long the broker keeps a node's session while it is away."
    )
    broker_hook_secret: str | None = Field(
        None, description="Secret EMQX sends to /api/broker/authenticate|authorize; unset = off."
    )
    retention_days: int = Field(
        0, ge=0, description="Default retention of readings in days (0 keeps them forever)."
    )
    retention_interval_s: int = Field(
        3600, ge=1, description="How often the retention task deletes expired readings."
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite fsync policy; FULL keeps acknowledged readings across power loss.",
    )
    sqlite_busy_timeout_ms: int = Field(
        30_000,
        ge=0,
        description="How long SQLite waits for a file another process has locked, in ms.",
    )
    hub_tick_ms: int = Field(
        1000, ge=50, description="How often the hub checks durations, missing data and windows."
    )
    hub_workers: int = Field(
        0,
        ge=0,
        le=1,
        description="Processes evaluating the rules beside the one that ingests (0: in that"
        " process; 1: a worker process, so ingest and rules use two cores).",
    )
    store_writer_process: bool = Field(
        False,
        description="Commit readings in a process of their own, so that committing and the"
        " rest of ingest use two cores (false: a thread of the process that ingests).",
    )
    hub_timezone: str = Field(
        "Asia/Shanghai",
        description="IANA time zone of rule time windows (clock times), and of tenants that"
        " set none (where their days of telemetry start).",
    )
    hub_webhook_attempts: int = Field(
        5, ge=1, le=20, description="Tries of one webhook delivery before it is failed."
    )
    hub_webhook_backoff_ms: int = Field(
        1000, ge=10, description="Wait before a webhook's first retry (ms); doubles each time."
    )
    work_order_sla: str = Field(
        "critical=4h,major=24h,minor=72h,warning=7d,indeterminate=7d",
        pattern=r"^\s*[a-z]+\s*=\s*\d+(\.\d+)?\s*[mhd]\s*(,\s*[a-z]+\s*=\s*\d+(\.\d+)?\s*[mhd]\s*)*$",
        description="Work-order deadline per severity (m, h or d); omitted ones keep defaults.",
    )
    work_order_check_s: int = Field(
        60, ge=1, description="How often overdue work orders are looked for (seconds)."
    )
    anomaly_enabled: bool = Field(
        True, description="Score watched readings for anomalies (costs ingest CPU; see docs)."
    )
    anomaly_threshold: float = Field(
        8.0, gt=0, description="Anomaly score (seasonal z-score) above which a reading is odd."
    )
    anomaly_consecutive: int = Field(
        3, ge=1, description="Odd readings in a row that raise an anomaly alarm (and calm clear)."
    )
    anomaly_max_series: int = Field(
        100_000, ge=100, description="Series with an anomaly baseline in memory at most (LRU)."
    )
    anomaly_worker: bool = Field(
        False,
        description="Score anomalies in a worker process of their own, so that scoring uses"
        " another core than ingest (false: a thread of the process that ingests).",
    )
    anomaly_snapshot_s: int = Field(
        600, ge=10, description="How often anomaly baselines are saved to the store (seconds)."
    )
    lighting_tick_s: float = Field(
        5.0,
        ge=0.1,
        le=60,
        description="How often lighting plans due are pushed and timed setDim commands sent (s).",
    )
    lighting_recompile_s: float = Field(
        300.0,
        ge=1,
        description="How often every tenant's lighting plans are compiled again (s): nights roll"
        " on, lamps are mounted and moved.",
    )
    lighting_tolerance: float = Field(
        2.0, ge=0, le=50, description="How far (percentage points) a lamp may be off its plan."
    )
    lighting_out_of_program_s: float = Field(
        600.0,
        ge=0,
        description="How long a lamp off its plan waits before an out_of_program alarm (s).",
    )
    forecast_window_days: int = Field(
        14, ge=3, le=90, description="Days of hourly rollups a district forecast is fitted on."
    )
    metrics_port: int = Field(
        -1,
        ge=-1,
        le=65535,
        description="Port of a separate /metrics address without authentication (-1: off).",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the separate metrics port listens on."
    )
    session_idle_timeout_s: int = Field(
        7200, ge=60, description="A console session ends after this long without a request (s)."
    )
    session_lifetime_s: int = Field(
        43_200, ge=300, description="A console session ends this long after its login (s)."
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        description="Failed logins in a row per user name or address before they are slowed.",
    )
    login_max_delay_s: int = Field(
        300, ge=1, description="Longest wait imposed after repeated failed logins (seconds)."
    )
    ngsi_ld_offline: bool = Field(
        True,
        description="NGSI-LD: never fetch a JSON-LD @context from the network; a context that"
        " is neither shipped nor preloaded (ngsi_ld_contexts) is refused (LdContextNotAvailable).",
    )
    ngsi_ld_context_hosts: str = Field(
        "",
        description="NGSI-LD, with ngsi_ld_offline off: comma-separated hosts a @context may be"
        " fetched from (once, then cached); * for any host.",
    )
    ngsi_ld_contexts: Path | None = Field(
        None,
        description="NGSI-LD: a JSON file mapping @context URLs to local files (relative to"
        " it), served from disk and never fetched (air-gapped sites).",
    )
    ngsi_ld_private_endpoints: bool = Field(
        True,
        description="NGSI-LD: notify subscription endpoints on loopback, private and link-local"
        " addresses (a control room's own network); false refuses them (BadRequestData).",
    )
    ngsi_ld_notification_ttl_s: int = Field(
        86_400,
        ge=60,
        description="NGSI-LD: how long a notification a receiver does not take is retried"
        " before it is dropped (logged and counted as failed), in seconds.",
    )
    ngsi_ld_temporal_limit: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="NGSI-LD temporal API: the most instances of one attribute an answer holds;"
        " a longer history is answered in part (206 with Content-Range), paged by time.",
    )
    ngsi_ld_open_types: str = Field(
        "",
        description="NGSI-LD open data: comma-separated entity types (smartpole's names, e.g."
        " AirQualityObserved,NoiseLevelObserved,WeatherObserved, or full IRIs) that anyone may"
        " read without credentials, as ngsi_ld_open_tenant sees them. Empty: none (the default).",
    )
    ngsi_ld_open_tenant: str = Field(
        "city",
        description="NGSI-LD open data: the tenant whose view of the open types anonymous readers"
        " get (a viewer of it).",
    )
    ngsi_ld_anonymous: str | None = Field(
        None,
        pattern=r"^[^:]+:(admin|operator|viewer)$",
        description="NGSI-LD sandboxes and conformance runs only: requests without credentials"
        " act as this tenant and role (tenant:role, e.g. city:admin). Off by default; logged"
        " loudly at start.",
    )
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    map_tiles: str | None = Field(
        None,
        # an XYZ template names {z}, {x} and {y}; a style URL has no braces at all
        pattern=r"^https?://[^/{}]+/(?:[^{}]*\{z\}.*\{x\}.*\{y\}.*|[^{}]*)$",
        description=(
            "Base map of the console: an XYZ raster tile URL template"
            " (https://host/{z}/{x}/{y}.png) or a MapLibre style URL (https://host/style.json,"
            " its tiles, glyphs and sprites on the same host); unset = the offline map (district"
            " outlines and roads drawn from the poles)."
        ),
    )

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the configured engine."""
        if self.db:
            url = self.db
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{self.data_dir.resolve() / 'smartpole.db'}"
