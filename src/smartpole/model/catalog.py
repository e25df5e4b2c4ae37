"""What each device kind measures, described once.

Ingest validation, the simulator, UI labels (zh-CN/en) and the NGSI-LD mapping all read this
table. A key that a kind does not list is still accepted and stored as it comes.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from smartpole.model.types import DeviceKind, Quality

__all__ = ["CATALOG", "KeySpec", "KindSpec", "ValueType", "check_value"]


class ValueType(enum.StrEnum):
    """The type a catalog key's values must have."""

    NUMBER = "number"
    BOOL = "bool"
    STRING = "string"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One telemetry key: its type, unit, physical range and labels."""

    key: str
    type: ValueType
    unit: str
    label_en: str
    label_zh: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One device kind: labels, Smart Data Model type and its keys by name."""

    kind: DeviceKind
    label_en: str
    label_zh: str
    sdm: str | None
    keys: dict[str, KeySpec]


def _n(key: str, unit: str, en: str, zh: str, lo: float, hi: float) -> KeySpec:
    return KeySpec(key, ValueType.NUMBER, unit, en, zh, lo, hi)


def _b(key: str, en: str, zh: str) -> KeySpec:
    return KeySpec(key, ValueType.BOOL, "", en, zh)


def _s(key: str, en: str, zh: str) -> KeySpec:
    return KeySpec(key, ValueType.STRING, "", en, zh)


def _kind(kind: DeviceKind, en: str, zh: str, sdm: str | None, *keys: KeySpec) -> KindSpec:
    return KindSpec(kind, en, zh, sdm, {k.key: k for k in keys})


_ELECTRICAL = (
    _n("voltage", "V", "Voltage", "电压", 0, 480),
    _n("current", "A", "Current", "电流", 0, 100),
    _n("power", "W", "Active power", "有功功率", 0, 50_000),
    _n("energy", "kWh", "Energy", "累计电能", 0, 1e9),
)

K = DeviceKind
CATALOG: dict[DeviceKind, KindSpec] = {
    s.kind: s
    for s in (
        _kind(
            K.LAMP,
            "Street lamp",
            "路灯",
            "Streetlight",
            _b("on", "Switched on", "开关状态"),
            _n("dim", "%", "Dim level", "调光等级", 0, 100),
            *_ELECTRICAL,
            _n("power_factor", "", "Power factor", "功率因数", 0, 1),
            _n("hours", "h", "Operating hours", "累计运行时长", 0, 1e6),
            _n("temperature", "°C", "Driver temperature", "驱动温度", -40, 125),
            _n("lux", "lx", "Illuminance", "照度", 0, 200_000),
        ),
        _kind(
            K.CAMERA,
            "Camera",
            "摄像机",
            "Device",
            _b("recording", "Recording", "录像中"),
            _n("bitrate", "kbit/s", "Stream bitrate", "码率", 0, 100_000),
            _n("people", "", "People counted", "人流计数", 0, 100_000),
            _n("vehicles", "", "Vehicles counted", "车流计数", 0, 100_000),
            _n("power", "W", "Power", "功率", 0, 500),
        ),
        _kind(
            K.SMALL_CELL,
            "5G small cell",
            "5G微基站",
            "Device",
            _n("users", "", "Connected users", "接入用户数", 0, 10_000),
            _n("throughput_dl", "Mbit/s", "Downlink throughput", "下行吞吐量", 0, 20_000),
            _n("throughput_ul", "Mbit/s", "Uplink throughput", "上行吞吐量", 0, 10_000),
            _n("power", "W", "Power", "功率", 0, 2_000),
            _n("temperature", "°C", "Temperature", "温度", -40, 100),
        ),
        _kind(
            K.AIR,
            "Air quality sensor",
            "空气质量监测",
            "AirQualityObserved",
            _n("pm25", "µg/m³", "PM2.5", "PM2.5", 0, 1_000),
            _n("pm10", "µg/m³", "PM10", "PM10", 0, 2_000),
            _n("no2", "µg/m³", "Nitrogen dioxide", "二氧化氮", 0, 4_000),
            _n("o3", "µg/m³", "Ozone", "臭氧", 0, 2_000),
            _n("co", "mg/m³", "Carbon monoxide", "一氧化碳", 0, 200),
            _n("so2", "µg/m³", "Sulphur dioxide", "二氧化硫", 0, 3_000),
            _n("aqi", "", "Air quality index", "空气质量指数", 0, 500),
        ),
        _kind(
            K.WEATHER,
            "Weather station",
            "气象站",
            "WeatherObserved",
            _n("temperature", "°C", "Temperature", "温度", -60, 60),
            _n("humidity", "%", "Relative humidity", "相对湿度", 0, 100),
            _n("pressure", "hPa", "Air pressure", "气压", 800, 1_100),
            _n("wind_speed", "m/s", "Wind speed", "风速", 0, 90),
            _n("wind_direction", "°", "Wind direction", "风向", 0, 360),
            _n("rain", "mm/h", "Rainfall", "降雨量", 0, 500),
            _n("illuminance", "lx", "Illuminance", "光照度", 0, 200_000),
        ),
        _kind(
            K.NOISE,
            "Noise sensor",
            "噪声监测",
            "NoiseLevelObserved",
            _n("laeq", "dB(A)", "Equivalent sound level", "等效声级", 0, 150),
            _n("lamax", "dB(A)", "Maximum sound level", "最大声级", 0, 150),
        ),
        _kind(
            K.DISPLAY,
            "LED screen",
            "LED信息屏",
            "Device",
            _b("on", "Switched on", "开关状态"),
            _n("brightness", "%", "Brightness", "亮度", 0, 100),
            _s("content", "Showing", "当前内容"),
            _n("power", "W", "Power", "功率", 0, 5_000),
        ),
        _kind(
            K.SPEAKER,
            "Speaker",
            "广播音柱",
            "Device",
            _b("playing", "Playing", "播放中"),
            _n("volume", "%", "Volume", "音量", 0, 100),
        ),
        _kind(
            K.SOS,
            "Emergency call",
            "一键求助",
            "Device",
            _b("pressed", "Button pressed", "按下求助"),
            _b("call_active", "Call active", "通话中"),
        ),
        _kind(
            K.CHARGER,
            "EV charger",
            "充电桩",
            "EVChargingStation",
            _b("occupied", "Occupied", "占用"),
            _s("status", "Status", "状态"),
            _n("power", "kW", "Charging power", "充电功率", 0, 400),
            _n("energy", "kWh", "Energy delivered", "累计充电量", 0, 1e9),
            _n("session_energy", "kWh", "Session energy", "本次充电量", 0, 500),
        ),
        _kind(
            K.WIFI,
            "Public Wi-Fi",
            "公共WiFi",
            "Device",
            _n("clients", "", "Connected clients", "连接终端数", 0, 5_000),
            _n("traffic", "MB", "Traffic", "流量", 0, 1e9),
        ),
        _kind(
            K.TILT,
            "Tilt sensor",
            "倾斜监测",
            "Device",
            _n("tilt", "°", "Tilt angle", "倾斜角", 0, 90),
            _n("tilt_x", "°", "Tilt X", "X轴倾角", -90, 90),
            _n("tilt_y", "°", "Tilt Y", "Y轴倾角", -90, 90),
            _n("vibration", "g", "Vibration", "振动", 0, 16),
        ),
        _kind(
            K.FLOOD,
            "Flood sensor",
            "积水监测",
            "Device",
            _n("water_level", "cm", "Water level", "积水深度", 0, 500),
            _b("flooded", "Flooded", "积水告警"),
        ),
        _kind(
            K.MANHOLE,
            "Manhole cover sensor",
            "井盖监测",
            "Device",
            _b("open", "Cover open", "井盖打开"),
            _n("tilt", "°", "Cover tilt", "井盖倾角", 0, 180),
            _n("water_level", "cm", "Water level", "水位", 0, 1_000),
        ),
        _kind(
            K.GATEWAY,
            "Pole gateway",
            "智能网关",
            "Device",
            _n("cpu", "%", "CPU load", "CPU占用", 0, 100),
            _n("memory", "%", "Memory used", "内存占用", 0, 100),
            _n("temperature", "°C", "Temperature", "温度", -40, 125),
            _n("uptime", "s", "Uptime", "运行时长", 0, 1e10),
            *_ELECTRICAL,
        ),
        _kind(
            K.METER,
            "Energy meter",
            "电能表",
            "Device",
            *_ELECTRICAL,
            _n("power_factor", "", "Power factor", "功率因数", 0, 1),
            _n("frequency", "Hz", "Frequency", "频率", 45, 65),
        ),
        # A gateway's device of a type smartpole does not know: every key as it comes.
        _kind(K.GENERIC, "Generic device", "通用设备", "Device"),
    )
}


def _bounds(spec: KeySpec) -> tuple[ValueType, float, float]:
    low = -math.inf if spec.min is None else spec.min
    high = math.inf if spec.max is None else spec.max
    return spec.type, low, high


# kind -> key -> (type, min, max): what ``fits`` needs, without attribute lookups
_FIT: dict[DeviceKind, dict[str, tuple[ValueType, float, float]]] = {
    kind: {key: _bounds(spec) for key, spec in entry.keys.items()}
    for kind, entry in CATALOG.items()
}


def fits(kind: DeviceKind, key: str, value: Any) -> bool:
    """Whether :func:`check_value` would find ``value`` good: the fast test of the ingest path
    (values come from JSON: ``bool``, ``int``, ``float``, ``str``, lists and objects)."""
    spec = _FIT[kind].get(key)
    if spec is None:
        return True
    vtype, low, high = spec
    t = type(value)
    if vtype is ValueType.NUMBER:
        # (inf - inf is nan: not finite, not good)
        return (t is int or (t is float and value - value == 0.0)) and low <= value <= high
    if vtype is ValueType.BOOL:
        return t is bool or (t is int and value in (0, 1))
    if vtype is ValueType.STRING:
        return t is str
    return True


def check_value(kind: DeviceKind, key: str, value: Any) -> tuple[Quality, str]:
    """Check one value against the catalog: ``(GOOD, "")`` or the flag and a reason.

    Keys the kind does not list are good as they come.
    """
    spec = CATALOG[kind].keys.get(key)
    if spec is None:
        return Quality.GOOD, ""
    if spec.type is ValueType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return Quality.WRONG_TYPE, f"{key} must be a number, got {type(value).__name__}"
        if not math.isfinite(value):
            return Quality.OUT_OF_RANGE, f"{key} is not finite"
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            return (
                Quality.OUT_OF_RANGE,
                f"{key}={value} outside [{spec.min}, {spec.max}] {spec.unit}",
            )
        return Quality.GOOD, ""
    if spec.type is ValueType.BOOL:
        # Many devices send 0/1 for booleans; accept them, reject anything else.
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return Quality.GOOD, ""
        return Quality.WRONG_TYPE, f"{key} must be a boolean, got {value!r}"
    if spec.type is ValueType.STRING and not isinstance(value, str):
        return Quality.WRONG_TYPE, f"{key} must be a string, got {type(value).__name__}"
    return Quality.GOOD, ""
