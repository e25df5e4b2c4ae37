"""smartpole's own entities, as NGSI-LD keyValues with smartpole's @context, validate against the
Smart Data Models JSON Schemas: the schema files are shipped in tests/sdm_schemas/ (README.md
there says where each came from) and every ``$ref`` resolves to one of them, offline.

What a schema requires and smartpole cannot honestly give is listed in :data:`GAPS`: the test
tolerates exactly those errors, and fails if one of them goes away (so the list stays true)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fixtures_api import City, make_device, make_pole
from mqtt_client import send_telemetry
from smartpole.app import Platform
from smartpole.model.types import Role

BASE = "/ngsi-ld/v1"
OWN_CONTEXT = "http://smartpole.test/ngsi-ld/v1/jsonldContexts/smartpole-context.jsonld"
LINK = {"Link": f'<{OWN_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'}

SCHEMAS = Path(__file__).resolve().parent / "sdm_schemas"
SDM_IO = "https://smart-data-models.github.io/"
SDM_RAW = "https://raw.githubusercontent.com/smart-data-models/"

# Each shipped file and the URLs the schemas' "$ref"s name it by (its own "$id" is added).
SHIPPED: dict[str, tuple[str, ...]] = {
    "data-models/common-schema.json": (SDM_IO + "data-models/common-schema.json",),
    "dataModel.Environment/Environment-schema.json": (
        SDM_IO + "dataModel.Environment/Environment-schema.json",
        SDM_RAW + "dataModel.Environment/master/Environment-schema.json",
    ),
    "dataModel.Weather/weather-schema.json": (SDM_IO + "dataModel.Weather/weather-schema.json",),
    "dataModel.Environment/AirQualityObserved/schema.json": (),
    "dataModel.Environment/NoiseLevelObserved/schema.json": (),
    "dataModel.Weather/WeatherObserved/schema.json": (),
    "dataModel.Streetlighting/Streetlight/schema.json": (),
}
MODELS = {
    "AirQualityObserved": "dataModel.Environment/AirQualityObserved/schema.json",
    "WeatherObserved": "dataModel.Weather/WeatherObserved/schema.json",
    "NoiseLevelObserved": "dataModel.Environment/NoiseLevelObserved/schema.json",
    "Streetlight": "dataModel.Streetlighting/Streetlight/schema.json",
}
# Required by a schema, not given by smartpole (not faked either): a noise level's observation
# period (dateObservedFrom/To): a sensor reports its LAeq at an instant, smartpole does not know
# the window it was averaged over. (A Streetlight's status comes from its alarms.)
GAPS: dict[str, frozenset[str]] = {
    "NoiseLevelObserved": frozenset({"dateObservedFrom", "dateObservedTo"}),
}

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _formats() -> FormatChecker:
    """Every format jsonschema can check here, with RFC 3339 date-time checked even without
    the optional package jsonschema would use for it."""
    checker = FormatChecker()
    if "date-time" not in checker.checkers:

        @checker.checks("date-time", raises=ValueError)
        def date_time(value: object) -> bool:
            if not isinstance(value, str):
                return True  # formats only constrain strings
            if not _RFC3339.fullmatch(value):
                return False
            dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # real dates only
            return True

    return checker


def _load(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / relative).read_text(encoding="utf-8"))
    return data


@cache
def _registry() -> Registry[Any]:
    """Every shipped file under its "$id" and the URLs it is referenced by; nothing else, so a
    reference to anything not shipped is unresolvable instead of fetched."""
    resources: list[tuple[str, Resource[Any]]] = []
    for relative, urls in SHIPPED.items():
        contents = _load(relative)
        resource = DRAFT202012.create_resource(contents)
        resources += [(url, resource) for url in sorted({contents["$id"], *urls})]
    return Registry().with_resources(resources)


def _validator(model: str) -> Validator:
    schema = _load(MODELS[model])
    if schema.get("$schema", "").rstrip("#") == "http://json-schema.org/schema":
        cls: type[Validator] = Draft202012Validator  # "the latest draft" when it was written
    else:
        cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=_registry(), format_checker=_formats())


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _report(model: str, errors: list[ValidationError]) -> str:
    lines = [f"{model}: {len(errors)} error(s)"]
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path) or "(entity)"
        schema_path = "/".join(str(p) for p in e.absolute_schema_path)
        lines.append(f"  at {where}: {e.message}  [{e.validator} at {schema_path}]")
    return "\n".join(lines)


def _gap(model: str, error: ValidationError) -> str | None:
    """The missing property if ``error`` is one of the model's known gaps."""
    if error.validator != "required" or error.absolute_path:
        return None
    missing = next((p for p in error.validator_value if f"'{p}'" in error.message), None)
    return missing if missing in GAPS.get(model, ()) else None


def check(model: str, entity: dict[str, Any]) -> None:
    """Fail with every validation error the entity has beyond the model's known gaps, or if a
    known gap is no longer there."""
    errors = sorted(_validator(model).iter_errors(entity), key=lambda e: str(e.absolute_path))
    unexpected = [e for e in errors if _gap(model, e) is None]
    report = _report(model, unexpected)
    if unexpected:
        print(report)  # pytest shows it with the failure
    assert not unexpected, report
    left = {_gap(model, e) for e in errors} - {None}
    assert left == GAPS.get(model, frozenset()), f"{model}: GAPS is out of date: {left}"


def invalid(model: str, entity: dict[str, Any]) -> list[str]:
    """The errors the entity has beyond the model's known gaps (a broken copy must have some)."""
    return [e.message for e in _validator(model).iter_errors(entity) if _gap(model, e) is None]


async def send(platform: Platform, token: str, values: dict[str, Any]) -> None:
    """Publish telemetry over the platform's MQTT endpoint (acknowledged after the commit)."""
    await send_telemetry(platform.mqtt[0].mqtt_port, token, values)


async def key_values(client: httpx.AsyncClient, auth: dict[str, str], entity_id: str) -> Any:
    r = await client.get(
        f"{BASE}/entities/{entity_id}",
        params={"options": "keyValues"},
        headers={**auth, **LINK},
    )
    assert r.status_code == 200, r.text
    return r.json()


# -- the shipped schemas -------------------------------------------------------------------------


def test_every_reference_resolves_to_a_shipped_file() -> None:
    registry = _registry()
    for relative in SHIPPED:
        contents = _load(relative)
        resolver = registry.resolver(base_uri=contents["$id"])
        for ref in _refs(contents):
            assert resolver.lookup(ref).contents is not None, (relative, ref)
    for model in MODELS:
        _validator(model)  # each model's schema is itself a valid schema


def test_format_checking_is_on() -> None:
    formats = _formats()
    assert formats.conforms("2025-12-06T05:46:40.000Z", "date-time")
    assert not formats.conforms("2025-12-06 05:46:40", "date-time")
    assert not formats.conforms("2025-13-06T05:46:40Z", "date-time")


# -- smartpole's entities ------------------------------------------------------------------------


async def test_smartpoles_entities_validate_against_the_smart_data_models(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    pole = await make_pole(client, city, "FU-SDM-0001", name="Shennan SDM 1", road="Shennan Rd")
    devices = {
        "AirQualityObserved": (
            await make_device(client, city, "city", "air", pole, name="FU-SDM-0001-air"),
            {"pm25": 35.5, "pm10": 62, "no2": 41.2, "o3": 88, "co": 0.6, "so2": 7, "aqi": 57},
        ),
        "WeatherObserved": (
            await make_device(client, city, "city", "weather", pole, name="FU-SDM-0001-wx"),
            {
                "temperature": 21.5,
                "humidity": 40,
                "pressure": 1012.3,
                "wind_speed": 3.4,
                "wind_direction": 270,
                "rain": 0.2,
                "illuminance": 18_000,
            },
        ),
        "NoiseLevelObserved": (
            await make_device(client, city, "city", "noise", pole, name="FU-SDM-0001-noise"),
            {"laeq": 62.4, "lamax": 78.9},
        ),
        "Streetlight": (
            await make_device(client, city, "city", "lamp", pole, name="FU-SDM-0001-lamp"),
            {"on": True, "dim": 80, "power": 96.5, "voltage": 229.8},
        ),
    }
    auth = city.auth("city", Role.VIEWER)
    got: dict[str, dict[str, Any]] = {}
    for model, (device, values) in devices.items():
        await send(platform, device["token"], {"ts": 1_765_000_000_000, "values": values})
        entity_id = f"urn:ngsi-ld:{model}:smartpole:{device['name']}"
        got[model] = await key_values(client, auth, entity_id)
        assert got[model]["id"] == entity_id
        assert got[model]["type"] == model  # a short name: smartpole's context was applied
    failures = []
    for model, entity in got.items():
        try:
            check(model, entity)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)
    # the readings are there, in the model's scale (not only the schema's minimum)
    assert got["AirQualityObserved"]["airQualityIndex"] == 57
    assert got["AirQualityObserved"]["pm25"] == 35.5
    assert got["WeatherObserved"]["relativeHumidity"] == 0.4
    assert got["WeatherObserved"]["windDirection"] == 270
    assert got["NoiseLevelObserved"]["LAeq"] == 62.4
    assert got["Streetlight"]["powerState"] == "on"
    assert got["Streetlight"]["illuminanceLevel"] == 0.8

    # broken copies do not validate: the check above cannot pass vacuously
    broken: dict[str, list[dict[str, Any]]] = {model: [] for model in got}

    def breaks(model: str, **changes: Any) -> None:
        entity = copy.deepcopy(got[model])
        for key, value in changes.items():
            if value is None:
                entity.pop(key, None)
            else:
                entity[key] = value
        broken[model].append(entity)

    breaks("AirQualityObserved", pm25=-1)
    breaks("AirQualityObserved", airQualityIndex=57.5)
    breaks("AirQualityObserved", dateObserved="6 Dec 2025")
    breaks("AirQualityObserved", location=None)
    breaks("WeatherObserved", relativeHumidity=40)  # a percentage, not the model's ratio
    breaks("WeatherObserved", windDirection=400)
    breaks("WeatherObserved", type="WeatherForecast")
    breaks("NoiseLevelObserved", type="NoiseLevel")
    breaks("NoiseLevelObserved", location={"type": "Point", "coordinates": "114.05,22.54"})
    breaks("Streetlight", powerState=True)  # the lamp's own boolean, not the model's "on"
    breaks("Streetlight", illuminanceLevel=80)  # a percentage, not the model's 0-1
    breaks("Streetlight", status="lamp_failure")  # the alarm's name, not the model's enum
    breaks("Streetlight", status=None)  # required
    for model, entities in broken.items():
        for entity in entities:
            assert invalid(model, entity), f"a broken {model} validated: {entity}"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_a_wrong_type_never_validates(model: str) -> None:
    """Without a platform: the smallest entity of each model with its type changed."""
    entity = {
        "id": f"urn:ngsi-ld:{model}:x",
        "type": "Thing",
        "location": {"type": "Point", "coordinates": [114.05, 22.54]},
        "dateObserved": "2025-12-06T05:46:40.000Z",
    }
    assert any("'Thing' is not one of" in m for m in invalid(model, entity))
