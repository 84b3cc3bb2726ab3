"""Values fitted to their columns: text for text, 32-bit integers, finite floats, and strings
no longer than their column, with a visible marker (or, for identities, a hash)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptlab.store.writer import LIMITS, fit_float, fit_int, fit_text


@pytest.mark.parametrize(("value", "text"), [
    ("plain", "plain"),
    (None, None),
    ("", ""),
    ([{"type": "text", "text": "x"}], '[{"type": "text", "text": "x"}]'),
    ({"b": 1, "a": "é"}, '{"b": 1, "a": "é"}'),
    (5, "5"),
    (1.5, "1.5"),
    (True, "true"),
    (b"raw \xff bytes", "raw \ufffd bytes"),
    (complex(1, 2), "\"(1+2j)\""),
])
def test_non_text_becomes_json_text(value: object, text: str | None) -> None:
    assert fit_text(value) == text


def test_text_over_its_column_is_cut_with_a_marker_that_says_how_long_it_was() -> None:
    fitted = fit_text("m" * 600, 500)
    assert fitted is not None and len(fitted) == 500
    assert fitted.startswith("m" * 400) and fitted.endswith("…[600 chars]")
    assert fit_text("m" * 500, 500) == "m" * 500


def test_identities_over_their_column_keep_a_hash_of_the_whole_so_they_stay_distinct() -> None:
    a = fit_text("x" * 250 + "a", 200, identity=True)
    b = fit_text("x" * 250 + "b", 200, identity=True)
    assert a is not None and b is not None
    assert len(a) == len(b) == 200 and a != b
    assert a == fit_text("x" * 250 + "a", 200, identity=True)  # the same value, the same id
    assert a.startswith("x" * 150) and "…#" in a


@pytest.mark.parametrize(("value", "number"), [
    (3, 3), ("3", 3), (" 7 ", 7), (3.0, 3), (-(2**31), -(2**31)), (2**31 - 1, 2**31 - 1),
    (2**31, None), (2**70, None), (3.5, None), (float("nan"), None), (float("inf"), None),
    (True, None), ("many", None), ([1], None), (None, None), ("1e3", None),
])
def test_integers_are_32_bit_or_none(value: object, number: int | None) -> None:
    assert fit_int(value) == number


@pytest.mark.parametrize(("value", "number"), [
    (1.5, 1.5), (2, 2.0), ("0.25", 0.25), (float("inf"), None), (float("-inf"), None),
    (float("nan"), None), (10**400, None), (True, None), ("x", None), (None, None),
    ([1.0], None),
])
def test_floats_are_finite_or_none(value: object, number: float | None) -> None:
    assert fit_float(value) == number


def test_the_limits_are_the_schemas() -> None:
    assert LIMITS["trials"]["row_id"] == 200
    assert LIMITS["trials"]["model"] == 500
    assert LIMITS["trials"]["prompt"] == LIMITS["trials"]["model_alias"] == 200
    assert LIMITS["results"]["response_model"] == 500
    assert LIMITS["results"]["finish_reason"] == 50
    assert LIMITS["results"]["fingerprint"] == 200
    assert LIMITS["results"]["error_kind"] == LIMITS["attempts"]["error_kind"] == 20
    assert LIMITS["results"]["cache_source"] == 100
    assert "output" not in LIMITS["results"]  # Text: unbounded


@given(st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.none(),
                 st.lists(st.text(max_size=5), max_size=3)),
       st.integers(min_value=20, max_value=500), st.booleans())
def test_fitted_text_is_text_within_its_limit(value: object, limit: int, identity: bool) -> None:
    fitted = fit_text(value, limit, identity=identity)
    assert fitted is None or (isinstance(fitted, str) and len(fitted) <= limit)
    assert (fitted is None) == (value is None)


@given(st.one_of(st.integers(), st.floats(), st.text(max_size=12), st.booleans()))
def test_fitted_numbers_are_storable(value: object) -> None:
    i = fit_int(value)
    assert i is None or (type(i) is int and -(2**31) <= i < 2**31)
    f = fit_float(value)
    assert f is None or (type(f) is float and math.isfinite(f))
