"""Lighting documents: YAML and JSON in, every problem located (with its YAML line), YAML out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from smartpole.errors import InvalidInput
from smartpole.lighting.documents import lighting_yaml, parse_lighting, read_lighting
from smartpole.model.lighting import Anchor, OneOffDates, TimeSpec, WorkingDays

TODAY = dt.date(2026, 1, 1)
YAML = """\
programs:
  - name: default
    steps:
      - {at: sunset, level: 100, fade_s: 60}
      - {at: "virtual_midnight-120", level: 50, fade_s: 300}
      - {at: "05:30", level: 30}
      - {at: sunrise, level: 0}
  - name: festival
    steps:
      - {at: "sunset-15", level: 100}
groups:
  - {name: shennan, roads: [深南大道], tags: [main]}
  - name: futian
    polygon: POLYGON ((114.0 22.5, 114.1 22.5, 114.1 22.6, 114.0 22.5))
holidays:
  - {name: shenzhen, dates: [2026-09-01], workdays: []}
calendar:
  - {name: workdays, program: default, group: shennan, working_days: CN}
  - {name: local, program: festival, group: shennan, holidays: shenzhen, priority: 5}
  - {name: lantern, program: festival, group: futian, dates: [2026-03-03], priority: 20}
""".encode()


def test_a_yaml_document_reads_into_typed_values() -> None:
    doc = read_lighting(YAML, "application/yaml", TODAY)
    assert [p.name for p in doc.programs] == ["default", "festival"]
    assert doc.programs[0].steps[1].at == TimeSpec(Anchor.VIRTUAL_MIDNIGHT, -120)
    assert doc.groups[0].selector.roads == {"深南大道"}
    assert len(doc.groups[1].selector.polygon) == 4
    assert doc.calendar[0].rule == WorkingDays("CN")
    assert doc.calendar[2].rule == OneOffDates(frozenset({dt.date(2026, 3, 3)}))


def test_export_to_yaml_reads_back_the_same() -> None:
    doc = read_lighting(YAML, "application/yaml", TODAY)
    again = read_lighting(lighting_yaml(doc).encode(), "application/yaml", TODAY)
    assert again == doc


def test_json_reads_like_yaml() -> None:
    body = {
        "programs": [{"name": "p", "steps": [{"at": "18:30", "level": 80}]}],
        "groups": [{"name": "g", "lamps": ["L1"]}],
        "calendar": [
            {"name": "c", "program": "p", "group": "g", "from": "2026-01-01", "to": "2026-12-31"}
        ],
    }
    doc = read_lighting(orjson.dumps(body), "application/json", TODAY)
    assert doc.programs[0].steps[0].at == TimeSpec(Anchor.CLOCK, 18 * 60 + 30)


def problems(text: str) -> list[dict[str, Any]]:
    with pytest.raises(InvalidInput) as caught:
        read_lighting(text.encode(), "application/yaml", TODAY)
    return caught.value.errors


def test_every_problem_is_reported_at_its_location_and_line() -> None:
    found = problems(
        """\
programs:
  - name: p
    steps:
      - {at: sunset, level: 100}
      - {at: moonrise, level: 50}
      - {at: "25:00", level: 140}
groups:
  - {name: g, roads: [a]}
calendar:
  - {name: c, program: nope, group: ghost, weekdays: [mon, funday]}
"""
    )
    by_loc = {tuple(p["loc"]): p for p in found}
    assert set(by_loc) == {
        ("programs", 0, "steps", 1, "at"),
        ("programs", 0, "steps", 2, "at"),
        ("programs", 0, "steps", 2, "level"),
        ("calendar", 0, "program"),
        ("calendar", 0, "group"),
        ("calendar", 0, "weekdays"),
    }
    assert "unknown event 'moonrise'" in by_loc[("programs", 0, "steps", 1, "at")]["msg"]
    assert by_loc[("programs", 0, "steps", 1, "at")]["line"] == 5
    assert by_loc[("programs", 0, "steps", 2, "level")]["line"] == 6
    assert by_loc[("calendar", 0, "group")]["line"] == 10


@pytest.mark.parametrize(
    ("rule", "loc"),
    [
        pytest.param("{}", ["calendar", 0], id="no-rule"),
        pytest.param("holidays: XX", ["calendar", 0, "holidays"], id="no-holiday-calendar"),
        pytest.param(
            "from: 2026-05-01, to: 2026-04-01", ["calendar", 0, "to"], id="range-backwards"
        ),
        pytest.param("dates: ['2026-02-30']", ["calendar", 0, "dates", 0], id="bad-date"),
    ],
)
def test_a_bad_calendar_entry_names_its_location(rule: str, loc: list[Any]) -> None:
    entry = "{name: c, program: p, group: g" + ("" if rule == "{}" else f", {rule}") + "}"
    found = problems(
        "programs: [{name: p, steps: [{at: sunset, level: 100}]}]\n"
        "groups: [{name: g}]\n"
        f"calendar: [{entry}]\n"
    )
    assert [p["loc"] for p in found] == [loc]


def test_overlapping_equal_priorities_are_a_located_problem() -> None:
    found = problems(
        "programs: [{name: p, steps: [{at: sunset, level: 100}]}]\n"
        "groups: [{name: g}]\n"
        "calendar:\n"
        "  - {name: weekend, program: p, group: g, weekdays: [sat, sun]}\n"
        "  - {name: spring, program: p, group: g, holidays: CN}\n"
    )
    assert found[0]["loc"] == ["calendar", 1, "priority"]
    assert "'weekend' and 'spring'" in found[0]["msg"]
    assert found[0]["line"] == 5


def test_two_items_of_a_part_with_one_name_are_a_located_problem() -> None:
    found = problems(
        "programs: [{name: p, steps: [{at: sunset, level: 100}]}]\n"
        "groups:\n"
        "  - {name: g}\n"
        "  - {name: g, roads: [a]}\n"
    )
    assert [(p["loc"], p["line"]) for p in found] == [(["groups", 1, "name"], 4)]
    assert "already the name of item 0" in found[0]["msg"]


def test_a_yaml_syntax_error_names_its_line() -> None:
    found = problems("programs:\n  - name: [unclosed\n")
    assert found[0]["line"] >= 2


def test_a_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_lighting(["programs"])


def test_a_bad_polygon_is_a_located_problem() -> None:
    found = problems("groups: [{name: g, polygon: 'LINESTRING (0 0, 1 1)'}]\n")
    assert [p["loc"] for p in found] == [["groups", 0, "polygon"]]


def test_an_impossible_yaml_date_is_refused_not_raised() -> None:
    with pytest.raises(InvalidInput) as caught:
        read_lighting(b"holidays: [{name: h, dates: [2026-02-30]}]\n", "application/yaml", TODAY)
    assert "impossible value" in caught.value.detail
