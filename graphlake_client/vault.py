"""A vault over aliases: `save(alias, obj)` stores the object as a new asset, then moves the alias to
it with one compare-and-set write; `load(alias)` gives the object back.

The move is `moveAlias(alias, assetId, expectedAssetId)` (or `addAliases` for an alias that is new,
which refuses a name already taken): it happens only while the alias still names the asset the save
started from, so of two concurrent savers one wins and the other gets SaveConflict, instead of both
believing their object is the one under the name. Readers see the old object or the new one, never
none. Earlier objects stay stored as assets (the alias's history); a saver that lost deletes its own.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from graphlake_client import operations as ops
from graphlake_client.assets import Asset
from graphlake_client.downloads import HAS_BYTES, Downloads
from graphlake_client.errors import GraphlakeClientError, SaveConflict
from graphlake_client.exit_loop import to_thread


class _Current:
    """The default of `save(replaces=...)`: whatever the alias names when the save starts."""

    def __repr__(self) -> str:
        return "CURRENT"


CURRENT: Any = _Current()


def _temp_file(data: bytes) -> Path:
    fd, name = tempfile.mkstemp(prefix="graphlake-save-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return Path(name)


class Vault(Downloads):
    """save / load by alias, on top of the asset verbs and downloads."""

    async def alias_target(self, alias: str) -> str | None:
        """The ID of the asset `alias` names now; None if it names none."""
        found = (await self.execute(ops.ASSET_ID_BY_ALIAS, {"alias": alias}))["assetByAlias"]
        return found and found["id"]

    async def save(self, alias: str, obj: Any, *, replaces: str | None = CURRENT, name: str | None = None,
                   labels: list[str] | None = None, metadata: dict[str, Any] | None = None) -> Asset:
        """Store `obj` (str: text, bytes or Path: file, else JSON) and move `alias` to it only if it still names `replaces`."""
        expected = await self.alias_target(alias) if replaces is CURRENT else replaces
        stored = await self._store_object(alias, obj, name=name, labels=labels, metadata=metadata)
        try:
            if expected is None:  # a new name: addAliases refuses one taken meanwhile
                await self.execute(ops.ADD_ALIASES, {"assetId": stored["id"], "aliases": [alias]})
            else:
                await self.execute(ops.MOVE_ALIAS, {"alias": alias, "assetId": stored["id"], "expectedAssetId": expected})
        except GraphlakeClientError as error:
            # Lost the race, or the alias was refused (BAD_USER_INPUT): either way our object is under
            # no name, so nobody needs it (each retry left another behind). Any other error (UNAVAILABLE:
            # the move may yet have landed) leaves it, as it may be what the alias names now. Deleting
            # it is tidying up; should that fail too, the first error is what the caller must hear about.
            if error.code not in ("CONFLICT", "BAD_USER_INPUT"):
                raise
            try:
                await self.execute(ops.DELETE_ASSET, {"id": stored["id"]})
            except GraphlakeClientError:
                pass
            if error.code != "CONFLICT":
                raise
            raise SaveConflict(alias, expected, await self.alias_target(alias)) from error
        return {**stored, "aliases": [*stored.get("aliases", []), alias]}

    async def _store_object(self, alias: str, obj: Any, *, name: str | None, labels: list[str] | None,
                            metadata: dict[str, Any] | None) -> Asset:
        """`obj` as a new asset: a str as TEXT, bytes or a Path as FILE, anything else as a JSON VALUE.
        Always one this save alone holds (resume=False): a save that loses deletes its asset, which
        must not be the one another upload of the same file joined and got (save's winner, say)."""
        if isinstance(obj, Path):
            return await self.store_file(obj, name=name, labels=labels, metadata=metadata, resume=False)
        if isinstance(obj, bytes | bytearray | memoryview):
            temp = await to_thread(_temp_file, bytes(obj))
            try:
                return await self.store_file(temp, name=name or alias, labels=labels, metadata=metadata, resume=False)
            finally:
                temp.unlink(missing_ok=True)
        if isinstance(obj, str):
            return await self.store_text(obj, name=name or alias, labels=labels, metadata=metadata)
        return await self.store_value(obj, name=name or alias, labels=labels, metadata=metadata)

    async def load(self, alias: str, *, to: Path | str | None = None, overwrite: bool = False) -> Any:
        """The object under `alias`: a value's Python object, a text's str, a file's bytes; with `to`,
        the Path it was written to instead (as save_to writes it: a value as JSON, a text as UTF-8;
        `overwrite` as save_to's)."""
        if to is None and (got := await self._read_content(alias)) is not None:
            # One request, whatever the kind: the server's content route (ID or alias) answers a value's
            # JSON and a text as stored, a file's bytes from its mount or a store's signed GET.
            described, data = got
            if described["kind"] == "VALUE":
                return json.loads(data)
            return data.decode() if described["kind"] == "TEXT" else data
        # An alias is what load is usually given: asked for first, so that takes one request, not two.
        found = (await self.execute(ops.ASSET_BY_ALIAS, {"alias": alias}))["assetByAlias"] or await self.get_asset(alias)
        if to is not None and found["kind"] in ("VALUE", "TEXT"):
            return await self.save_to(found, to, overwrite=overwrite)
        if found["kind"] == "VALUE":
            return found["value"]
        if found["kind"] == "TEXT":
            return found["text"]
        if found["kind"] not in HAS_BYTES:
            raise GraphlakeClientError(f"asset {found['id']} is a {found['kind']}, which load cannot read", "BAD_USER_INPUT", "alias")
        if to is not None:
            return await self.download(found["id"], to, overwrite=overwrite)
        return await self.read_bytes(found)
