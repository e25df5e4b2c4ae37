"""The real ThingsBoard IoT Gateway (``thingsboard-gateway`` 3.8.5) with its MQTT connector,
against smartpole's MQTT endpoint, unchanged: sensors publish to a small Mosquitto, the
gateway's MQTT Broker Connector reads them and reports them to smartpole as a ThingsBoard
gateway, naming each device's type (device profile) with ``deviceProfileExpression``.

The gateway pins an older tb-mqtt-client than this project, so it runs from its own virtual
environment, built from the hashed ``tests/iot_gateway/requirements.txt`` under
``.tools/iot-gateway-3.8.5`` on the first run (downloading from the package index) and reused
while that file is unchanged.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City, make_device, make_pole
from mosquitto import Mosquitto
from mqtt_client import V311, Device
from smartpole.app import Platform
from smartpole.registry.broker_hashes import broker_hash

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).parent / "iot_gateway" / "requirements.txt"
VENV = ROOT / ".tools" / "iot-gateway-3.8.5"
CONNECTOR = "MQTT Broker Connector"
SENSORS_USER, SENSORS_PASSWORD = "sensors", "sensors-secret"
WAIT = 60.0  # the gateway's start (it imports its connectors) takes seconds on a busy machine


def _built(venv: Path) -> bool:
    stamp = venv / "requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    return stamp.exists() and stamp.read_text() == digest


@pytest.fixture(scope="session")
def iot_gateway() -> Path:
    """The ``thingsboard-gateway`` program of its own virtual environment (built once)."""
    program = VENV / "bin" / "thingsboard-gateway"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    # pytest-xdist runs a session fixture once per worker: the first builds, the others wait.
    with open(VENV.parent / "iot-gateway.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build()
    assert program.exists(), f"{program} was not installed"
    return program


def _build() -> None:
    if not _built(VENV):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
            timeout=900,
        )
        digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
        (VENV / "requirements.sha256").write_text(digest)


@pytest.fixture
def sensors_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto where the sensors publish and the gateway's connector subscribes."""
    root = tmp_path / "sensors-broker"
    root.mkdir()
    (root / "passwd").write_text(f"{SENSORS_USER}:{broker_hash(SENSORS_PASSWORD)}\n")
    (root / "acl").write_text(f"user {SENSORS_USER}\ntopic readwrite #\n")
    broker = Mosquitto(root, root / "passwd", root / "acl").start()
    try:
        yield broker
    finally:
        broker.stop()


def _mapping(topic: str, profile: dict[str, str], series: list[tuple[str, str, str]]) -> Any:
    """A connector mapping: the device named by the topic's second level, its profile from
    ``profile`` and its time series ``(key, type, value expression)``."""
    return {
        "topicFilter": topic,
        "subscriptionQos": 1,
        "converter": {
            "type": "json",
            "deviceInfo": {
                "deviceNameExpressionSource": "topic",
                "deviceNameExpression": "(?<=sensor/)(.*?)(?=/)",
                **profile,
            },
            "sendDataOnlyOnChange": False,
            "timeout": 60000,
            "attributes": [],
            "timeseries": [{"key": k, "type": t, "value": v} for k, t, v in series],
        },
    }


MAPPINGS = [
    # the profile as each sensor says it: "Thermometer", "default"...
    _mapping(
        "sensor/+/data",
        {"deviceProfileExpressionSource": "message", "deviceProfileExpression": "${sensorType}"},
        [("temperature", "double", "${temp}"), ("humidity", "double", "${hum}")],
    ),
    # keys in Chinese and with spaces, as a Chinese city's sensors name them
    _mapping(
        "sensor/+/cn",
        {"deviceProfileExpressionSource": "constant", "deviceProfileExpression": "温湿度计"},
        [("温度", "double", "${temp}"), ("room temp", "double", "${temp}")],
    ),
]


@dataclass
class Gateway:
    """A running IoT Gateway process and its files."""

    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        """What the gateway logged so far (and wrote to its standard error)."""
        return "".join(
            path.read_text(errors="replace")
            for path in (self.log, self.log.with_name("stderr.log"))
            if path.exists()
        )


def _configure(home: Path, mqtt_port: int, token: str, sensors: Mosquitto) -> Path:
    config = home / "config"
    config.mkdir(parents=True)
    (home / "logs").mkdir()
    (config / "tb_gateway.json").write_bytes(
        orjson.dumps(
            {
                "thingsboard": {
                    "host": "127.0.0.1",
                    "port": mqtt_port,
                    "remoteShell": False,
                    "remoteConfiguration": True,  # as installed: it sends the connector attribute
                    "statistics": {"enable": False},
                    "deviceFiltering": {"enable": False},
                    "minPackSendDelayMS": 50,
                    "checkConnectorsConfigurationInSeconds": 600,
                    "handleDeviceRenaming": False,
                    "security": {"type": "accessToken", "accessToken": token},
                    "qos": 1,
                    "checkingDeviceActivity": {"checkDeviceInactivity": False},
                },
                "storage": {
                    "type": "memory",
                    "read_records_count": 100,
                    "max_records_count": 10000,
                },
                "grpc": {"enabled": False},
                "connectors": [{"type": "mqtt", "name": CONNECTOR, "configuration": "mqtt.json"}],
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    (config / "mqtt.json").write_bytes(
        orjson.dumps(
            {
                "broker": {
                    "host": "127.0.0.1",
                    "port": sensors.port,
                    "clientId": "iot-gateway-connector",
                    "version": 5,
                    "maxMessageNumberPerWorker": 10,
                    "maxNumberOfWorkers": 4,
                    "cleanSession": True,
                    "security": {
                        "type": "basic",
                        "username": SENSORS_USER,
                        "password": SENSORS_PASSWORD,
                    },
                },
                "mapping": MAPPINGS,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    logs = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "plain",
                "filename": str(home / "logs" / "gateway.log"),
                "encoding": "utf-8",
            }
        },
        "root": {"level": "INFO", "handlers": ["file"]},
    }
    (config / "logs.json").write_bytes(orjson.dumps(logs))
    return config


@pytest.fixture
async def site(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """A pole with a city gateway that may create the devices it reports."""
    pole = await make_pole(client, city, "FT-IOT-0001")
    gw = await make_device(client, city, "city", "gateway", pole, name="iot-gw")
    r = await client.post(
        f"/api/devices/{gw['id']}/attributes/server",
        json={"autoCreateDevices": True},
        headers=city.auth("city"),
    )
    assert r.status_code == 200, r.text
    return {"pole": pole, "gw": gw}


def _start(program: Path, home: Path, config: Path) -> Gateway:
    env = {**os.environ, "TB_GW_CONFIG_DIR": str(config), "TB_GW_LOGS_PATH": str(home / "logs")}
    with (home / "logs" / "stderr.log").open("wb") as stderr:
        proc = subprocess.Popen(
            [str(program)], cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    return Gateway(proc, home / "logs" / "gateway.log")


@pytest.fixture
async def gateway(
    iot_gateway: Path,
    platform: Platform,
    site: dict[str, Any],
    sensors_broker: Mosquitto,
    tmp_path: Path,
) -> AsyncIterator[Gateway]:
    """The IoT Gateway, connected to smartpole and to the sensors' broker."""
    home = tmp_path / "iot-gateway"
    config = _configure(home, platform.mqtt[0].mqtt_port, site["gw"]["token"], sensors_broker)
    gw = _start(iot_gateway, home, config)
    try:
        await until(lambda: platform.mqtt[0].is_connected(site["gw"]["id"]), gw)
        yield gw
    finally:
        gw.proc.terminate()
        try:
            await asyncio.to_thread(gw.proc.wait, 20)
        except subprocess.TimeoutExpired:
            gw.proc.kill()
            await asyncio.to_thread(gw.proc.wait)


async def until(check: Callable[[], Any], gw: Gateway, wait: float = WAIT) -> None:
    """Await until ``check()`` (a value or a coroutine) is true; fail showing the gateway's
    log when it never is."""
    deadline = time.monotonic() + wait
    while True:
        done = check()
        if asyncio.iscoroutine(done):
            done = await done
        if done:
            return
        if gw.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"condition not met; the gateway's log:\n{gw.text()[-4000:]}")
        await asyncio.sleep(0.2)


async def sensor_publishes(broker: Mosquitto, topic: str, payload: dict[str, Any]) -> None:
    """A sensor publishes one message to the sensors' broker."""
    sensor = Device(broker.port, None, V311, client_id=f"sensor-{topic.replace('/', '-')}")
    sensor.client.username_pw_set(SENSORS_USER, SENSORS_PASSWORD)
    assert await sensor.connect() == 0
    try:
        assert await sensor.publish(topic, payload) == 0
    finally:
        await sensor.close()


async def devices_named(client: httpx.AsyncClient, city: City) -> dict[str, dict[str, Any]]:
    r = await client.get("/api/devices", params={"limit": 1000}, headers=city.auth("city"))
    assert r.status_code == 200, r.text
    return {d["name"]: d for d in r.json()["items"]}


async def latest(client: httpx.AsyncClient, city: City, device_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/devices/{device_id}/latest", headers=city.auth("city"))
    assert r.status_code == 200, r.text
    return {k: v["value"] for k, v in r.json().items()}


async def test_the_iot_gateway_creates_generic_devices_of_its_profiles(
    gateway: Gateway,
    sensors_broker: Mosquitto,
    client: httpx.AsyncClient,
    city: City,
    site: dict[str, Any],
) -> None:
    """Devices of the profiles a gateway usually names ("Thermometer", "default") are created
    as generic devices keeping their profile, on the gateway's pole, and their readings are
    stored."""
    sent = {
        "thermo-1": {"sensorType": "Thermometer", "temp": 21.5, "hum": 40.0},
        "probe-1": {"sensorType": "default", "temp": 19.0, "hum": 55.5},
    }
    for name, payload in sent.items():
        await sensor_publishes(sensors_broker, f"sensor/{name}/data", payload)

    async def stored() -> bool:
        found = await devices_named(client, city)
        if not all(name in found for name in sent):
            return False
        for name, payload in sent.items():
            values = await latest(client, city, found[name]["id"])
            if values.get("temperature") != payload["temp"]:
                return False
        return True

    await until(stored, gateway)
    found = await devices_named(client, city)
    for name, payload in sent.items():
        device = found[name]
        assert (device["kind"], device["profile"]) == ("generic", payload["sensorType"])
        assert device["pole_id"] == site["pole"]
        assert (await latest(client, city, device["id"]))["humidity"] == payload["hum"]


async def test_the_iot_gateway_is_never_refused(
    gateway: Gateway,
    sensors_broker: Mosquitto,
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    site: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Chinese and spaced keys are stored as sent, the gateway's own attribute named after its
    connector is taken, and smartpole logs no refusal of anything the gateway sent."""
    caplog.set_level(logging.INFO, "smartpole")
    await sensor_publishes(sensors_broker, "sensor/th-cn-1/cn", {"temp": 23.5})

    async def stored() -> bool:
        found = await devices_named(client, city)
        if "th-cn-1" not in found:
            return False
        values = await latest(client, city, found["th-cn-1"]["id"])
        return values.get("温度") == 23.5 and values.get("room temp") == 23.5

    await until(stored, gateway)
    device = (await devices_named(client, city))["th-cn-1"]
    assert (device["kind"], device["profile"]) == ("generic", "温湿度计")
    r = await client.get(
        f"/api/devices/{site['gw']['id']}/attributes",
        params={"scope": "client"},
        headers=city.auth("city"),
    )
    assert any(CONNECTOR in key for key in r.json().get("client", {})), r.text
    logged = [r.getMessage() for when in ("setup", "call") for r in caplog.get_records(when)]
    assert not [line for line in logged if "rejected" in line or "refused" in line]
