"""A bundle the server reads on a caller's behalf (`confined`) is read from where it was when it was
opened: a folder of its path swapped for a link afterwards does not make the files where the link
leads its own (graphlake_client/bundle_files.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphlake_client.bundle_files import BundleReader
from graphlake_client.errors import GraphlakeClientError


def test_a_bundle_folder_swapped_for_a_link_after_it_was_opened_is_not_read(tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    for where, payload in ((mount / "bundles" / "b1", b"the bundle's"), (tmp_path / "outside" / "b1", b"not the lake's")):
        (where / "payloads").mkdir(parents=True)
        (where / "manifest.json").write_text("{}")
        (where / "payloads" / "x").write_bytes(payload)
    reader = BundleReader((mount / "bundles" / "b1").resolve(), confined=True)
    assert reader.read_bytes("payloads/x") == b"the bundle's"
    (mount / "bundles").rename(mount / "aside")
    (mount / "bundles").symlink_to(tmp_path / "outside")  # a direct writer's swap, after the server opened it
    with pytest.raises(GraphlakeClientError, match="not a file of the bundle's own"):
        reader.read_bytes("payloads/x")
    with pytest.raises(GraphlakeClientError, match="not a file of the bundle's own"), reader.files(["payloads/x"]):
        pass
