"""Canonical JSON and hashing: the contract behind trial keys and cache fingerprints."""

from __future__ import annotations

import hashlib

import pytest

from promptlab.canonical import canonical_json, hash_value, sha256_hex


@pytest.mark.parametrize(("value", "text"), [
    ({"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'),
    ({"z": {"y": None, "x": True}}, '{"z":{"x":true,"y":null}}'),
    ("é", '"é"'),  # not \\u00e9: ensure_ascii is off
    ([1.5, 0.1], "[1.5,0.1]"),
])
def test_canonical_json_sorts_keys_and_has_no_spaces(value: object, text: str) -> None:
    assert canonical_json(value) == text


def test_key_order_does_not_change_the_hash() -> None:
    assert hash_value({"a": 1, "b": 2}) == hash_value({"b": 2, "a": 1})
    assert hash_value({"a": 1}) != hash_value({"a": 1.5})


def test_hash_is_sha256_of_the_utf8_canonical_text() -> None:
    value = {"messages": [{"role": "user", "content": "Grüße"}]}
    expected = hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
    assert hash_value(value) == expected == sha256_hex(canonical_json(value).encode())


def test_a_pinned_value_keeps_its_hash() -> None:
    # Changing this hash changes every stored trial key and fingerprint: a migration.
    assert hash_value({"provider": "openai", "repeat": 0}) == sha256_hex(
        '{"provider":"openai","repeat":0}')
    assert sha256_hex("") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
