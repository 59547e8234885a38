"""graphlake_client/bundle_format.check_manifest: records' keys are checked as addAnnotations takes
them, before an import writes anything."""

from __future__ import annotations

from typing import Any

import pytest

from graphlake_client.bundle_format import FORMAT, check_manifest
from graphlake_client.errors import GraphlakeClientError

SHA = "0" * 64


def manifest(*keys: Any) -> dict[str, Any]:
    record = {"set": "s1", "asset": "a1", "kind": "CLASSIFICATION", "label": "cat", "geometry": None}
    return {
        "format": FORMAT, "format_version": 1, "dataset": {"name": "d"},
        "version": {"name": "v1", "manifest_sha256": SHA},
        "assets": {"a1": {"kind": "VALUE", "name": "x", "sha256": SHA, "payload": {"path": f"payloads/{SHA}", "size": 1,
                                                                                 "sha256": SHA}}},
        "schemas": {"c1": {"name": "animals", "kinds": ["CLASSIFICATION"], "labels": [{"name": "cat"}]}},
        "sets": {"s1": {"name": "labels", "purpose": "GROUND_TRUTH", "schema": "c1"},
                 "s2": {"name": "more", "purpose": "REVIEW", "schema": "c1"}},
        "datums": [{"split": "TRAIN", "metadata": {}, "roles": [{"role": "image", "asset": "a1"}],
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
