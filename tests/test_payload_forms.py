"""The telemetry parser's fast path accepts exactly what the checked path accepts, with the same
readings, and leaves every fault to the checked path's precise report."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartpole.errors import PayloadError
from smartpole.ingest.payload import _parse_checked, parse_telemetry

NOW = 1_764_000_000_000
keys = st.one_of(
    st.sampled_from(["power", "dim", "a.b", "x-1", "ts", "values"]), st.text(max_size=4)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=2), st.dictionaries(keys, scalars, max_size=2)
)
flat = st.dictionaries(keys, values, max_size=4)
stamped = st.fixed_dictionaries(
    {
        "ts": st.one_of(
            st.integers(min_value=0, max_value=5_000_000_000_000), st.booleans(), st.floats()
        ),
        "values": st.one_of(flat, scalars),
    }
)
entries = st.one_of(flat, stamped, scalars)
payloads = st.one_of(entries, st.lists(entries, max_size=4))


def outcome(parse: Any, data: Any) -> Any:
    try:
        return ("ok", parse(data, NOW))
    except PayloadError as err:
        return ("refused", err.detail)


@settings(max_examples=4000)
@given(payloads)
def test_the_fast_path_agrees_with_the_checked_path(data: Any) -> None:
    assert outcome(parse_telemetry, data) == outcome(_parse_checked, data)


@pytest.mark.parametrize(
    ("data", "readings"),
    [
        ({"power": 12.5, "on": True}, [("power", NOW, 12.5), ("on", NOW, True)]),
        ({"ts": NOW - 5, "values": {"dim": 40}}, [("dim", NOW - 5, 40)]),
        ([{"a": 1}, {"ts": NOW - 1, "values": {"b": "x"}}], [("a", NOW, 1), ("b", NOW - 1, "x")]),
        ({"ts": NOW, "values": {"j": {"k": [1]}}, "x": 1}, None),  # three keys: a flat object
    ],
)
def test_thingsboard_forms(data: Any, readings: Any) -> None:
    got = parse_telemetry(data, NOW)
    if readings is None:
        assert ("x", NOW, 1) in got
        assert ("values", NOW, {"j": {"k": [1]}}) in got
    else:
        assert got == readings
