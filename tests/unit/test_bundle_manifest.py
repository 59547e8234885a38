"""graphlake_client/bundle_format.check_manifest: records' keys, refs, fields and the version's name
are checked as the server takes them, before an import writes anything; a field of the wrong type
is named (it answered a server-side import with INTERNAL)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from graphlake_client.bundle_format import FORMAT, VERSION_NAME, check_manifest, parse_manifest
from graphlake_client.errors import GraphlakeClientError

SHA = "0" * 64


def manifest(*keys: Any) -> dict[str, Any]:
    record = {"set": "s1", "asset": "a1", "kind": "CLASSIFICATION", "label": "cat", "geometry": None, "score": None,
              "value": None, "attributes": None, "source": None, "verified": False}
    return {
        "format": FORMAT, "format_version": 1, "dataset": {"name": "d"},
        "version": {"name": "v1", "manifest_sha256": SHA},
        "assets": {"a1": {"kind": "VALUE", "name": "x", "sha256": SHA, "payload": {"path": f"payloads/{SHA}", "size": 1,
                                                                                 "sha256": SHA}}},
        "schemas": {"c1": {"name": "animals", "kinds": ["CLASSIFICATION"], "labels": [{"name": "cat"}]}},
        "sets": {"s1": {"name": "labels", "purpose": "GROUND_TRUTH", "schema": "c1"},
                 "s2": {"name": "more", "purpose": "REVIEW", "schema": "c1"}},
        "datums": [{"ref": "d1", "split": "TRAIN", "metadata": {}, "roles": [{"role": "image", "asset": "a1"}],
                    "records": [{**record, **({"key": key} if key is not ... else {})} for key in keys]}],
    }


def test_keys_are_checked_before_anything_is_written() -> None:
    check_manifest(manifest("coco:1", "coco:2", None, ...))  # keys are optional
    twice = manifest("coco:1", "coco:1")
    with pytest.raises(GraphlakeClientError, match=r"datums\[0\]\.records\[1\]\.key: is also the key of datums\[0\]\.records\[0\]"):
        check_manifest(twice)
    twice["datums"][0]["records"][1]["set"] = "s2"  # the same key in another set is another record's
    check_manifest(twice)
    for bad in ("", "   ", "k" * 201, 7):
        with pytest.raises(GraphlakeClientError, match=r"datums\[0\]\.records\[0\]\.key"):
            check_manifest(manifest(bad))


def test_the_version_name_rule_is_the_servers() -> None:
    from services import datasets

    assert VERSION_NAME.pattern == datasets._VERSION.pattern  # the client cannot import it: kept equal here


def broken(change: Any) -> dict[str, Any]:
    found = manifest(None)
    change(found)
    return found



@pytest.mark.parametrize(("change", "field"), [
    (lambda m: m["version"].__setitem__("name", "v 1"), "version.name"),  # the commit wrote everything, then was refused
    (lambda m: m["datums"].append(json.loads(json.dumps(m["datums"][0]))), r"datums\[1\]\.ref"),  # two datums of one ref
    (lambda m: m["datums"][0].pop("ref"), r"datums\[0\]\.ref"),
    (lambda m: m["datums"][0]["roles"][0].__setitem__("asset", ["x"]), r"datums\[0\]\.roles\[0\]\.asset"),
    (lambda m: m["sets"]["s1"].__setitem__("schema", ["x"]), r"sets\.s1\.schema"),
    (lambda m: m["datums"][0]["records"][0].__setitem__("geometry", {"mask": "x"}), r"datums\[0\]\.records\[0\]\.geometry\.mask"),
    (lambda m: m["datums"][0]["records"][0].pop("verified"), r"datums\[0\]\.records\[0\]\.verified"),
    (lambda m: m["datums"][0]["records"][0].pop("score"), r"datums\[0\]\.records\[0\]\.score"),
    (lambda m: m["datums"][0]["records"][0].__setitem__("score", "high"), r"datums\[0\]\.records\[0\]\.score"),
    (lambda m: m["datums"][0]["records"][0].__setitem__("attributes", [1]), r"datums\[0\]\.records\[0\]\.attributes"),
    (lambda m: m["datums"][0]["records"][0].__setitem__("label", 3), r"datums\[0\]\.records\[0\]\.label"),
])
def test_a_wrong_field_is_named(change: Any, field: str) -> None:
    with pytest.raises(GraphlakeClientError, match=rf"manifest\.json: {field}: ") as refused:
        check_manifest(broken(change))
    assert refused.value.code == "BAD_USER_INPUT"


def test_json_nested_too_deeply_is_not_json() -> None:
    with pytest.raises(GraphlakeClientError, match="not JSON \\(nested too deeply\\)") as refused:
        parse_manifest('{"format": "graphlake-bundle", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "b/manifest.json")
    assert refused.value.code == "BAD_USER_INPUT"
    assert parse_manifest(json.dumps(manifest(None)), "b/manifest.json")["version"]["name"] == "v1"
