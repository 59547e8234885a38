"""A bundle import's annotation records: matched by content against what each set holds already,
the missing ones added, and those the bundle says were verified marked so (verification is part
of the version's hash; who verified, and when, is not).

A set that holds, on the bundle's datums, records the bundle does not have is a conflict: a
version built from it would hold them too, and hash otherwise than the source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphlake_client import bundle_lookup as lookup
from graphlake_client import operations as ops
from graphlake_client.bundle_export import geometry_input
from graphlake_client.dataset_import import chunks

if TYPE_CHECKING:
    from graphlake_client.bundle_import import Pass

RECORD_BATCH = 1000  # records per addAnnotations


def _geometry_in(job: Pass, geometry: dict[str, Any] | None, *, key: bool) -> dict[str, Any] | None:
    """A bundle record's geometry with its mask's asset in this lake: as a key compares it, or as
    GeometryInput takes it. None if the mask asset is not in the lake yet."""
    if not geometry or "mask" not in geometry:
        return geometry
    asset = job.asset_of.get(geometry["mask"]["asset"])
    return {"mask": {"asset" if key else "assetId": asset}}


def _key(job: Pass, datum_ref: str, record: dict[str, Any]) -> str | None:
    datum, asset = job.datum_of.get(datum_ref), job.asset_of.get(record["asset"])
    geometry = _geometry_in(job, record["geometry"], key=True)
    if datum is None or asset is None or (geometry and "mask" in geometry and not geometry["mask"]["asset"]):
        return None  # made by this import: nothing in the lake can match it yet
    return lookup.record_key(datum, asset, record, geometry)


async def place_records(job: Pass, write: bool) -> None:
    """Match each set's records; with `write`, add the missing and verify what should be."""
    by_set: dict[str, list[tuple[str, dict[str, Any]]]] = {ref: [] for ref in job.manifest["sets"]}
    for datum in job.manifest["datums"]:
        for record in datum["records"]:
            by_set[record["set"]].append((datum["ref"], record))
    ours = set(job.datum_of.values())
    to_verify: list[str] = []
    for set_ref, records in by_set.items():
        set_id = job.set_of.get(set_ref)
        pool: dict[str, list[tuple[str, bool]]] = {}  # key -> (record id, verified) the set holds
        elsewhere: set[str] = set()  # record keys the set holds on other datums than this import's
        for held in await lookup.set_records(job.lake, set_id) if set_id else []:
            if held["datum"] and held["datum"]["id"] in ours:
                key = lookup.record_key(held["datum"]["id"], held["asset"]["id"], held, geometry_input(held["geometry"]))
                pool.setdefault(key, []).append((held["id"], held["verified"]))
            elif held.get("key"):
                elsewhere.add(held["key"])
        missing = []
        for datum_ref, record in records:
            wanted = _key(job, datum_ref, record)
            candidates = pool.get(wanted or "", [])
            if not candidates:
                missing.append((datum_ref, record))
                continue
            # Prefer a copy in the same verification state; a verified one the bundle has unverified conflicts.
            pick = next((c for c in candidates if c[1] == record["verified"]), candidates[0])
            candidates.remove(pick)
            job.report.records.present += 1
            if record["verified"] and not pick[1]:
                to_verify.append(pick[0])
            elif pick[1] and not record["verified"]:
                job.report.conflicts.append(f"set {set_ref}: record {pick[0]} is verified, the bundle's copy is not")
        extra = sum(len(c) for c in pool.values())
        if extra:
            name = job.manifest["sets"][set_ref]["name"]
            job.report.conflicts.append(f"annotation set {name!r} holds {extra} records on the bundle's datums that the "
                                        "bundle does not: a version built from it would differ from the source")
        job.report.records.new += len(missing)
        job.report.to_verify += sum(1 for _, r in missing if r["verified"])
        if write and missing:
            to_verify += await _add(job, set_id, missing, elsewhere)  # type: ignore[arg-type]
    job.report.to_verify += len(to_verify) if not write else 0
    if write:
        for chunk in chunks(to_verify):
            await job.lake.execute(ops.VERIFY_RECORDS, {"ids": chunk})


async def _add(job: Pass, set_id: str, missing: list[tuple[str, dict[str, Any]]], elsewhere: set[str]) -> list[str]:
    """Add the records; the ids of those to verify. A record whose key the set holds already on another
    datum (the same bundle imported before into another dataset, its files copied again) goes without
    its key: keys are unique in a set, and leave a version's hash alone; a rerun finds it by content."""
    verify: list[str] = []
    done = 0
    for chunk in chunks(missing, RECORD_BATCH):
        inputs = [{"assetId": job.asset_of[r["asset"]], "datumId": job.datum_of[datum_ref], "kind": r["kind"],
                   "label": r["label"], "score": r["score"], "value": r["value"],
                   "geometry": _geometry_in(job, r["geometry"], key=False), "attributes": r["attributes"],
                   "source": r["source"], "key": None if r.get("key") in elsewhere else r.get("key")}
                  for datum_ref, r in chunk]
        added = (await job.lake.execute(ops.ADD_BUNDLE_RECORDS, {"setId": set_id, "records": inputs}))["addAnnotations"]
        verify += [made for (_, r), made in zip(chunk, added["ids"], strict=True) if r["verified"]]
        done += len(chunk)
        job.say(f"added {done} of {len(missing)} records")
    return verify
