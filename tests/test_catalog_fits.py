"""The ingest path's fast catalog test agrees with the full check on every key and value."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from smartpole.model.catalog import CATALOG, check_value, fits
from smartpole.model.types import Quality

KEYS = [(kind, key) for kind, spec in CATALOG.items() for key in spec.keys] + [
    (kind, "not_in_the_catalog") for kind in CATALOG
]
JSON_VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.0, 1.0, 100, 100.5, 1e9, -1e-9]),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@settings(max_examples=3000)
@given(st.sampled_from(KEYS), JSON_VALUES)
def test_fits_says_good_exactly_when_check_value_does(kind_key: Any, value: Any) -> None:
    kind, key = kind_key
    assert fits(kind, key, value) == (check_value(kind, key, value)[0] is Quality.GOOD)


def test_range_edges_are_good_and_beyond_them_is_not() -> None:
    for kind, spec in CATALOG.items():
        for key, k in spec.keys.items():
            if k.min is not None:
                assert fits(kind, key, k.min)
                assert not fits(kind, key, k.min - 0.001)
            if k.max is not None:
                assert fits(kind, key, k.max)
                assert not fits(kind, key, k.max + 0.001)
