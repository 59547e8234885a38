"""Privacy requests: one user seeded across every domain, exported, anonymized and erased, until no
field of any collection names them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from documents.clock import utcnow
from documents.json_value import StoredJson
from documents.roles import Role
from graphlake.settings import Settings
from graphlake_client import Client, ResumeState
from resolvers.context import AppState
from services.events.feed import WRITERS_COLLECTION
from services.privacy.aging import anonymize_older_than, scheduled_anonymization
from services.privacy.export import write_export
from services.privacy.places import IDENTITY_FIELDS, pseudonym, pseudonym_key
from services.privacy.requests import anonymize_user
from services.schedules import SCHEDULES
from services.uploads.reconciler import reconcile, sweep_closed
from tests import factories
from tests import test_uploads as uploads
from tests.conftest import MakeToken, Served
from tests.operations import Api, object_id

ALICE = "alice@lab.org"
NOT_SEARCHED = {"event_feed"}  # the live feed's ring of recent events; see README, Privacy requests


async def seed_alice(api: Api, make_token: MakeToken, served: Served, tmp_path: Path) -> dict[str, Any]:
    """Alice in every identity field Graphlake has (places.IDENTITY_FIELDS), through the API."""
    alice = await make_token(Role.ADMIN, "alice-laptop", user_id=ALICE)
    bob = await make_token(Role.CONTRIBUTOR, "bob", user_id="bob")
    await api.data("CreateApiToken", {"input": {"name": "robot-arm", "role": "CONTRIBUTOR"}}, token=alice)
    note = await factories.value_asset(api, alice, "note", {"reading": 3}, metadata={"operator": ALICE})
    await factories.annotation_set(api, alice, (await factories.schema(api, alice, "model-schema"))["id"],
                                   purpose="PREDICTION", source={"kind": "MODEL", "name": "yolov8"}, name="predictions")
    owned_by_her = await factories.value_asset(api, bob, "for-alice", {"x": 1}, owner={"userId": ALICE})
    data = tmp_path / "scan.bin"
    data.write_bytes(os.urandom(50_000))
    async with Client(served.base_url, alice, resume=ResumeState(tmp_path / "resume.json")) as lake:
        scan = await lake.upload_file(data, mount="local")
    raw = await factories.collection(api, alice, "alice-raw")
    await api.data("AddToCollection", {"input": {"collectionId": raw["id"], "items": [{"assetId": owned_by_her["id"]}]}},
                   token=alice)
    await api.data("PinAsset", {"assetId": note["id"]}, token=alice)
    datums = await factories.datums(api, alice, 2, split="TRAIN")
    dataset = await factories.dataset(api, alice, "alice-set")
    schema = await factories.schema(api, alice, "alice-schema")
    labels = await factories.annotation_set(api, alice, schema["id"], source={"kind": "HUMAN", "name": ALICE},
                                            name="alice-labels")
    added = await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": d["roles"][0]["asset"]["id"], "datumId": d["id"], "kind": "CLASSIFICATION", "label": "scratch"}
        for d in datums]}, token=bob)
    await api.data("VerifyAnnotations", {"ids": [r["id"] for r in added["addAnnotations"]["records"]], "verified": True},
                   token=alice)
    version = await factories.version(api, alice, dataset["id"], "v1", addDatums=[d["id"] for d in datums],
                                      addAnnotationSets=[labels["id"]])
    await api.data("LogEvents", {"inputs": [{"eventType": "CALIBRATED", "message": f"calibrated by {ALICE}.",
                                             "source": {"userId": ALICE}, "data": {"operator": ALICE}}]}, token=bob)
    # The privacy commands below run in processes of their own: the server's journaled AUDIT events
    # are stored first, as the README asks of an operator (stop the server, or wait its 50 ms).
    await served.app.state.graphlake.feed.settled()
    return {"note": note["id"], "scan": scan, "version": version["id"], "datums": datums}


async def places_naming(db, needle: str) -> list[str]:
    """Every collection.field path, in every document of every collection, whose value (or a key on
    the way to it) holds `needle`."""
    return await places_where(db, lambda value: isinstance(value, str) and needle in value)


async def places_holding_number(db, number: int) -> list[str]:
    """Every collection.field path whose value is the integer `number` (for sizes)."""
    return await places_where(db, lambda value: isinstance(value, int) and not isinstance(value, bool) and value == number)


async def places_where(db, matches: Callable[[Any], bool]) -> list[str]:
    """Every collection.field path, in every document of every collection searched, whose value or
    key `matches` (a key's path ends in `.<key>`)."""
    found = []

    def walk(value: Any, path: str) -> None:
        if matches(value):
            found.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key, f"{path}.<key>")
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                walk(item, f"{path}[]")

    for name in await db.list_collection_names():
        if name not in NOT_SEARCHED:
            async for document in db[name].find():
                walk(document, name)
    return sorted(set(found))


async def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in a thread: the app under test shares this event loop, and must not be held."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_MONGODB_URL=settings.mongodb_url.get_secret_value(), GRAPHLAKE_DATABASE=settings.database,  # type: ignore[union-attr]
               GRAPHLAKE_DATA_DIR=str(settings.data_dir), COLUMNS="2000")  # one line per message
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "graphlake", *args], env=env,
                                   cwd=settings.data_dir, capture_output=True, text=True, timeout=60)


async def test_the_export_holds_every_place_that_names_the_user(api: Api, admin: str, make_token: MakeToken,
                                                                served: Served, state: AppState, settings: Settings,
                                                                tmp_path: Path) -> None:
    seeded = await seed_alice(api, make_token, served, tmp_path)
    answer = (await api.data("PrivacyExport", {"userId": ALICE}, token=admin))["privacyExport"]
    places = {p["collection"]: p["documents"] for p in answer["places"]}
    await served.app.state.graphlake.feed.settled()
    asked = await state.db.events.find_one({"event_type": "AUDIT", "message": {"$regex": "^privacyExport by"}})
    assert asked is not None and ALICE not in json.dumps(asked, default=str)  # audited, under the pseudonym
    assert json.loads(asked["data"]["json"])["subject"] == pseudonym(ALICE, await pseudonym_key(state.db))
    assert set(places) == set(IDENTITY_FIELDS)  # every identity field was seeded, and each is found
    assert all("secret_hash" not in token for token in places["api_tokens"])
    assert {e["event_type"] for e in places["events"]} >= {"CALIBRATED", "AUDIT"}
    assert next(a for a in places["assets"] if a["name"] == "note")["metadata"] == {"operator": ALICE}
    small = (await api.data("PrivacyExport", {"userId": ALICE, "limitPerCollection": 1}, token=admin))["privacyExport"]
    assert {p["collection"] for p in small["places"] if p["truncated"]} >= {"assets", "events"}
    viewer = await make_token(Role.CONTRIBUTOR)
    assert (await api.error("PrivacyExport", {"userId": ALICE}, token=viewer))["extensions"]["code"] == "FORBIDDEN"

    archive = tmp_path / "alice.zip"
    counts = await write_export(state.db, ALICE, archive, stores=state.stores)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # a person's data: owner-only
    assert counts["files"] == 1 and counts["assets"] == len(places["assets"])
    with zipfile.ZipFile(archive) as zipped:
        document = json.loads(zipped.read("export.json"))
        (file_name,) = [n for n in zipped.namelist() if n.startswith("files/")]
        assert zipped.read(file_name) == (tmp_path / "scan.bin").read_bytes()
    assert document["user"] == ALICE and set(document["places"]) == set(IDENTITY_FIELDS)
    assert seeded["scan"]["id"] in file_name

    written = await cli(settings, "privacy", "export", ALICE, "--output", str(tmp_path / "alice.json"))
    assert written.returncode == 0, written.stderr
    assert set(json.loads((tmp_path / "alice.json").read_text())["places"]) == set(IDENTITY_FIELDS)
    audit = await state.db.events.find_one({"event_type": "AUDIT", "message": {"$regex": "^privacy export"}})
    assert ALICE not in json.dumps(audit, default=str)  # the audit trail names the pseudonym only


async def test_an_export_with_files_is_whole_or_absent_and_lists_the_files_its_store_lacks(
        api: Api, make_token: MakeToken, served: Served, state: AppState, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An export that fails half-way leaves no file under its name (a zip closed on the way out
    looked whole, without the rest of the files); a file of the person's that its store does not
    hold is named, and listed in the zip, while the rest is exported (it raised a bare
    FileNotFoundError: the command printed a traceback)."""
    seeded = await seed_alice(api, make_token, served, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    store = state.stores["local"]
    real_read = store.read

    async def stops_answering(key: str):  # a store that fails after the first bytes of a file
        async for chunk in real_read(key):
            yield chunk[:10]
            raise OSError("the store stopped answering")

    monkeypatch.setattr(store, "read", stops_answering)
    with pytest.raises(OSError, match="stopped answering"):
        await write_export(state.db, ALICE, out / "alice.zip", stores=state.stores)
    assert list(out.iterdir()) == []  # neither a zip that looks whole nor its temporary
    monkeypatch.undo()

    scan = await state.db.assets.find_one({"_id": object_id(seeded["scan"]["id"])})
    store.path(scan["storage"]["key"]).unlink()  # lost from the mount
    exported = await cli(settings, "privacy", "export", ALICE, "--with-payloads", "-o", str(out / "alice.zip"))
    said = " ".join(exported.stderr.split())
    assert exported.returncode == 0 and "Traceback" not in said, exported.stderr
    assert f"warning: asset {seeded['scan']['id']} (scan.bin, ACTIVE): its file local:{scan['storage']['key']} is not in " \
        "the store; listed in missing-files.json" in said and "filesMissing: 1" in said
    with zipfile.ZipFile(out / "alice.zip") as zipped:
        assert sorted(zipped.namelist()) == ["export.json", "missing-files.json"]
        assert [m["asset"] for m in json.loads(zipped.read("missing-files.json"))] == [seeded["scan"]["id"]]
    assert stat.S_IMODE((out / "alice.zip").stat().st_mode) == 0o600 and len(list(out.iterdir())) == 1
    # Its audit entry counts the documents exported: the files, found or missing, are not documents.
    [audit] = await state.db.events.find({"event_type": "AUDIT", "message": {"$regex": "^privacy export"}}).to_list()
    counts = {k: int(v) for k, v in (line.strip().split(": ") for line in exported.stderr.splitlines()
                                     if line.startswith("  ") and ": " in line)}
    documents = sum(v for k, v in counts.items() if k not in ("files", "filesMissing"))
    assert StoredJson.model_validate(audit["data"]).decode()["documents"] == str(documents)


async def test_erase_leaves_no_field_naming_the_user(api: Api, make_token: MakeToken, served: Served, state: AppState,
                                                     settings: Settings, tmp_path: Path) -> None:
    seeded = await seed_alice(api, make_token, served, tmp_path)
    assert await places_naming(state.db, ALICE)
    asked = await cli(settings, "privacy", "erase", ALICE)  # without --confirm: says what it would touch, changes nothing
    assert asked.returncode == 0 and seeded["version"] in asked.stderr and "--confirm" in asked.stderr  # a plan, not a failure
    said = " ".join(asked.stderr.split())
    assert f"delete asset {seeded['scan']['id']}" in said
    assert f"keep asset {seeded['note']}: 1 holder(s) keep this asset (MANUAL_PIN" in said, said  # named as the erase will
    assert "would delete 1 asset(s) and 1 token(s)" in said
    assert "replace the user's id with their pseudonym in 1 api_tokens document(s)" in said  # one she made (hers go)
    assert (await state.db.api_tokens.find_one({"user_id": ALICE})) is not None
    assert await places_naming(state.db, ALICE) and (await state.db.assets.find_one(
        {"_id": object_id(seeded["scan"]["id"])}))["status"] == "ACTIVE"

    erased = await cli(settings, "privacy", "erase", ALICE, "--confirm")
    assert erased.returncode == 0, erased.stderr
    assert await places_naming(state.db, ALICE) == []
    alias = pseudonym(ALICE, await pseudonym_key(state.db))
    assert alias in erased.stderr and seeded["version"] in erased.stderr  # the version is reported, and left whole
    note = await state.db.assets.find_one({"_id": object_id(seeded["note"])})
    assert note["status"] == "ACTIVE" and note["created_by"] == alias  # pinned, so kept, and listed
    assert f"kept asset {seeded['note']}: " in erased.stderr
    scan = await state.db.assets.find_one({"_id": object_id(seeded["scan"]["id"])})
    assert (scan["status"], scan["name"]) == ("DELETED", "(erased)")
    assert not (settings.data_dir / "objects" / "local" / scan["storage"]["key"]).exists()
    version = await state.db.dataset_versions.find_one({"_id": object_id(seeded["version"])})
    assert version["status"] == "READY" and version["created_by"] == alias and version["datum_count"] == 2
    assert await state.db.api_tokens.count_documents({"user_id": {"$in": [ALICE, alias]}}) == 0  # her token is gone
    assert (await state.db.api_tokens.find_one({"name": "robot-arm"}))["created_by"] == alias  # what she made stays
    audit = await state.db.events.find_one({"event_type": "AUDIT", "message": {"$regex": "^privacy erase"}})
    assert json.loads(audit["data"]["json"])["subject"] == alias


async def test_an_erase_plan_names_the_versions_holding_records_the_user_added(api: Api, make_token: MakeToken,
                                                                               served: Served, settings: Settings,
                                                                               tmp_path: Path) -> None:
    """Bob only added records (to Alice's set, on Alice's datums): the version holds copies naming him,
    which the erase rewrites, so its plan names the version as Alice's does."""
    seeded = await seed_alice(api, make_token, served, tmp_path)
    asked = await cli(settings, "privacy", "erase", "bob")
    assert asked.returncode == 0 and seeded["version"] in asked.stderr, asked.stderr


async def test_an_erase_after_anonymize_still_reaches_the_user_and_their_deleted_assets(
        api: Api, make_token: MakeToken, served: Served, state: AppState, settings: Settings, tmp_path: Path) -> None:
    """Anonymized first (by hand, or by GRAPHLAKE_ANONYMIZE_AFTER_DAYS), the user's documents name
    the pseudonym: an export and an erase by their id still reach them there. And an asset of theirs
    deleted before the erase loses its content too, not only those the erase deletes."""
    seeded = await seed_alice(api, make_token, served, tmp_path)
    alice = await make_token(Role.CONTRIBUTOR, "alice-2", user_id=ALICE)
    gone = await factories.value_asset(api, alice, "loose", {"secret": "loose"}, description="her notes")
    await api.data("DeleteAsset", {"id": gone["id"]}, token=alice)
    await served.app.state.graphlake.feed.settled()
    await anonymize_user(state.db, ALICE, await pseudonym_key(state.db))
    alias = pseudonym(ALICE, await pseudonym_key(state.db))
    assert await state.db.api_tokens.count_documents({"user_id": alias}) == 2  # her tokens work, under the pseudonym

    exported = await cli(settings, "privacy", "export", ALICE, "--output", str(tmp_path / "alice.json"))
    assert exported.returncode == 0, exported.stderr
    assets = json.loads((tmp_path / "alice.json").read_text())["places"]["assets"]
    assert {a["name"] for a in assets} >= {"note", "loose"}

    asked = await cli(settings, "privacy", "erase", ALICE)
    said = " ".join(asked.stderr.split())
    assert asked.returncode == 0 and "and 2 token(s)" in said and f"delete asset {seeded['scan']['id']}" in said
    assert "content of 1 asset(s) of theirs deleted before" in said
    erased = await cli(settings, "privacy", "erase", ALICE, "--confirm")
    assert erased.returncode == 0, erased.stderr
    assert await state.db.api_tokens.count_documents({"user_id": {"$in": [ALICE, alias]}}) == 0
    loose = await state.db.assets.find_one({"_id": object_id(gone["id"])})
    assert (loose["name"], "value" in loose, "description" in loose) == ("(erased)", False, False)
    scan = await state.db.assets.find_one({"_id": object_id(seeded["scan"]["id"])})
    assert (scan["status"], scan["name"]) == ("DELETED", "(erased)")

    blank = await cli(settings, "privacy", "export", "  ")  # one line saying why, not a traceback
    assert blank.returncode == 1 and "userId: name a user" in blank.stderr and "Traceback" not in blank.stderr


async def test_anonymize_keeps_everything_under_a_stable_pseudonym(api: Api, make_token: MakeToken, served: Served,
                                                                   state: AppState, tmp_path: Path) -> None:
    seeded = await seed_alice(api, make_token, served, tmp_path)
    reader = await make_token(Role.VIEWER)
    before = (await api.data("VerifyVersion", {"id": seeded["version"]}, token=reader))["datasetVersion"]
    key = await pseudonym_key(state.db)
    alias, changed = await anonymize_user(state.db, ALICE, key)
    # Guarantees: who made or verified a version's copies is rewritten, what they hold is not: its hash stays.
    after = (await api.data("VerifyVersion", {"id": seeded["version"]}, token=reader))["datasetVersion"]
    assert after["verification"]["ok"] and after["manifestSha256"] == before["manifestSha256"]
    copies = await factories.version_copies(seeded["version"])
    assert len([c for c in copies if c.get("verified_by") == alias]) == 2  # the copies were rewritten
    assert alias == pseudonym(ALICE, key) and set(changed) == set(IDENTITY_FIELDS)
    assert await places_naming(state.db, ALICE) == []
    note = await state.db.assets.find_one({"_id": object_id(seeded["note"])})
    assert json.loads(note["metadata"]["json"]) == {"operator": alias}
    assert {"k": "operator", "v": alias} in note["metadata"]["attrs"]  # its query copies follow
    assert json.loads(note["value"]["json"]) == {"reading": 3}  # content is never rewritten (its SHA-256 is recorded)
    predictions = await state.db.annotation_sets.find_one({"name": "predictions"})
    assert predictions["source"]["name"] == "yolov8" and predictions["created_by"] == alias  # a model's name is content
    assert await state.db.api_tokens.find_one({"user_id": alias})  # tokens still work, under the pseudonym
    assert (await anonymize_user(state.db, ALICE, key))[1] == {}  # nothing left to change


async def test_old_personal_fields_are_anonymized_and_recent_ones_kept(api: Api, make_token: MakeToken,
                                                                       state: AppState, settings: Settings) -> None:
    alice = await make_token(Role.CONTRIBUTOR, "alice", user_id=ALICE)
    old = await factories.value_asset(api, alice, "old", {"x": 1}, metadata={"by": ALICE})
    new = await factories.value_asset(api, alice, "new")
    await state.db.assets.update_one({"_id": object_id(old["id"])}, {"$set": {"created_at": utcnow() - timedelta(days=40)}})
    key = await pseudonym_key(state.db)
    await state.db[SCHEDULES].delete_many({})
    daily = settings.model_copy(update={"anonymize_after_days": 30.0})
    changed = await scheduled_anonymization(state.db, state.feed, daily, key)
    assert changed == {"assets": 1}
    assert await scheduled_anonymization(state.db, state.feed, daily, key) is None  # once a day, on one process
    logged = await state.db.events.find_one({"event_type": "AUDIT", "message": {"$regex": "^anonymized personal"}})
    assert json.loads(logged["data"]["json"])["changed"] == "1"
    aged = await state.db.assets.find_one({"_id": object_id(old["id"])})
    assert aged["created_by"] == pseudonym(ALICE, key) and ALICE not in aged["metadata"]["json"]
    assert (await state.db.assets.find_one({"_id": object_id(new["id"])}))["created_by"] == ALICE
    assert await state.db.api_tokens.find_one({"user_id": ALICE})  # credentials are not aged
    assert await anonymize_older_than(state.db, utcnow() - timedelta(days=30), key) == {}


async def test_what_a_person_logged_or_uploaded_is_in_their_export_and_their_erase(
        api: Api, make_token: MakeToken, served: Served, state: AppState, tmp_path: Path) -> None:
    """An event a person logs, and their upload's ASSET_STATUS event, name them (`source.userId`, as
    Graphlake writes it when the client names nobody), so an export holds them and an erase rewrites
    them. They named nobody: the export left both out, an erase left her id in her event's text, and
    the ASSET_STATUS message kept the erased file's name, readable by any VIEWER."""
    from services.privacy.requests import erase_user, export_places

    alice = await make_token(Role.CONTRIBUTOR, "alice-laptop", user_id=ALICE)
    logged = await api.data("LogEvent", {"input": {"eventType": "PLATE_READ", "message": f"plate 7 read by {ALICE}",
                                                   "data": {"operator": ALICE}, "source": {"nodeId": "reader-1"}}},
                            token=alice)
    other = await api.data("LogEvent", {"input": {"eventType": "PLATE_READ", "source": {"userId": "robot-3"}}}, token=alice)
    scan = tmp_path / "alice_smith_result.bin"
    scan.write_bytes(os.urandom(1000))
    async with Client(served.base_url, alice, resume=ResumeState(tmp_path / "resume.json")) as lake:
        uploaded = await lake.upload_file(scan, mount="local")
    await served.app.state.graphlake.feed.settled()
    exported = {str(d["_id"]): d async for collection, d in export_places(state.db, ALICE) if collection == "events"}
    status = next(e for e in exported.values() if e["event_type"] == "ASSET_STATUS")
    assert str(object_id(logged["logEvent"]["id"])) in exported and status["source"] == {"user_id": ALICE}
    assert str(object_id(other["logEvent"]["id"])) not in exported  # a userId the client gave is the one kept
    assert "alice_smith" not in status["message"]  # the asset by its ID
    await erase_user(state.db, ALICE, await pseudonym_key(state.db), state.stores)
    left = [e async for e in state.db.events.find({})]
    assert not [e for e in left if ALICE in json.dumps(e, default=str) or "alice_smith" in json.dumps(e, default=str)]
    assert (await state.db.assets.find_one({"_id": object_id(uploaded["id"])}))["name"] == "(erased)"


async def test_an_erase_clears_a_deleted_asset_whatever_its_name(api: Api, make_token: MakeToken, state: AppState) -> None:
    """What an erase clears is judged by what is left, not by the name `(erased)`, which a user may
    have given: such a deleted asset kept its value and description through an erase."""
    from services.privacy.requests import erase_user, erasure_plan

    alice = await make_token(Role.CONTRIBUTOR, "alice-laptop", user_id=ALICE)
    named = await factories.value_asset(api, alice, "(erased)", {"diagnosis": "private"}, description="alice's notes")
    await api.data("DeleteAsset", {"id": named["id"]}, token=alice)
    assert (await erasure_plan(state.db, ALICE)).contents_cleared == 1
    await erase_user(state.db, ALICE, await pseudonym_key(state.db), state.stores)
    cleared = await state.db.assets.find_one({"_id": object_id(named["id"])})
    assert not {"value", "description"} & cleared.keys()
    assert (await erasure_plan(state.db, ALICE)).contents_cleared == 0  # nothing left: a rerun clears nothing


async def test_an_erase_leaves_nothing_of_the_persons_files_in_their_upload_sessions(
        api: Api, make_token: MakeToken, state: AppState, settings: Settings) -> None:
    """A session outlives its asset's delete (the reconciler sweeps its key once more by it), and it
    recorded the file: its size, its declared and computed SHA-256, the path it was to be filed at.
    An erase deleted the person's files and left all that in their sessions, and an upload of
    theirs still open kept its parts (their bytes) in the store until it expired. Their export
    lists the sessions that name them."""
    from services.privacy.requests import erase_user, erasure_plan, export_places

    alice = await make_token(Role.CONTRIBUTOR, "alice-laptop", user_id=ALICE)
    bob = await make_token(Role.CONTRIBUTOR, "bob", user_id="bob")
    raw = await factories.collection(api, alice, "alice-raw")
    sent: list[bytes] = []

    async def start(token: str, data: bytes, **fields: object) -> dict:
        sent.append(data)
        return await uploads.start(api, token, data, "local", **fields)

    async def finish(token: str, session: dict, data: bytes) -> None:
        assert (await uploads.put(session["url"], data, session["headers"])).status_code == 200
        await uploads.complete(api, token, session["id"])

    done = await start(alice, os.urandom(12_345), collectionId=raw["id"], path="alice_smith/scan-1.bin")
    await finish(alice, done, sent[-1])
    # Filed, it would be kept (its collection holds it): taken out again, nothing holds it.
    await api.data("RemoveFromCollection", {"collectionId": raw["id"], "assetIds": [done["asset"]["id"]]}, token=alice)
    for_her = await start(bob, os.urandom(23_456), owner={"userId": ALICE})  # Bob's session, her file
    await finish(bob, for_her, sent[-1])
    with uploads.multipart_from_one_mib(settings):
        unfinished = await start(alice, os.urandom(uploads.MIB + 34_567), collectionId=raw["id"],
                                 path="alice_smith/scan-2.bin")
    assert (await uploads.put(unfinished["parts"][0]["url"], sent[-1][:unfinished["partSizeBytes"]])).status_code == 200
    parts = state.stores["local"].upload_dir(httpx.URL(unfinished["parts"][0]["url"]).params["upload"])
    assert parts.is_dir()

    exported = {d["_id"] async for collection, d in export_places(state.db, ALICE) if collection == "upload_sessions"}
    assert exported == {str(object_id(s["id"])) for s in (done, unfinished)}  # Bob's names Bob
    assert (await erasure_plan(state.db, ALICE)).uploads_cleared == 3

    erased = await erase_user(state.db, ALICE, await pseudonym_key(state.db), state.stores)
    assert erased.uploads_cleared == 3
    sessions = [s async for s in state.db.upload_sessions.find({})]
    assert {s["asset_id"] for s in sessions} >= {object_id(s["asset"]["id"]) for s in (done, for_her, unfinished)}
    held = json.dumps(sessions, default=str)
    for needle in (ALICE, "alice_smith", *(hashlib.sha256(data).hexdigest() for data in sent)):
        assert needle not in held, needle
    assert not {s["size_bytes"] for s in sessions} & {len(data) for data in sent}
    closed = next(s for s in sessions if s["_id"] == object_id(unfinished["id"]))
    assert (closed["status"], closed["sweep_due"]) == ("ABORTED", True) and not parts.exists()
    assert (await erasure_plan(state.db, ALICE)).uploads_cleared == 0  # nothing left: a rerun clears nothing
    # What the reconciler needs of them is kept: the last sweep of each key, once its URLs are dead.
    long_ago = utcnow() - timedelta(hours=1)
    await state.db.upload_sessions.update_many({}, {"$set": {"expires_at": long_ago, "finished_at": long_ago}})
    assert await sweep_closed(state.stores) == 3
    assert await reconcile(state.stores, state.feed) == 0  # and nothing else of theirs is left for it to settle


async def test_an_erase_leaves_no_digest_or_size_of_an_erased_file_and_a_version_it_froze_still_verifies(
        api: Api, make_token: MakeToken, state: AppState) -> None:
    """A file's SHA-256 lets anyone holding a copy confirm the person had it: personal data. An erase
    left an erased asset's `sha256`, `size_bytes` and `media_type`, and its ASSET_STATUS event's
    `sizeBytes`. An asset a READY version holds is pinned by it: the erase keeps it whole, and the
    version, whose copies froze its digest, still verifies."""
    from documents.dataset import DatasetVersion
    from services.privacy.requests import erase_user, erasure_plan
    from services.snapshots import verify

    alice = await make_token(Role.CONTRIBUTOR, "alice-laptop", user_id=ALICE)
    data = os.urandom(31_337)
    session = await uploads.start(api, alice, data, "local")
    assert (await uploads.put(session["url"], data, session["headers"])).status_code == 200
    await uploads.complete(api, alice, session["id"])
    note = await factories.value_asset(api, alice, "note", {"diagnosis": "private " + os.urandom(8).hex()})
    [datum] = await factories.datums(api, alice, 1, roles=("image",))
    frozen = datum["roles"][0]["asset"]["id"]
    version = await factories.version(api, alice, (await factories.dataset(api, alice, "alice-set"))["id"], "v1",
                                      addDatums=[datum["id"]])
    await state.feed.settled()
    erased = {a["_id"]: a async for a in state.db.assets.find(
        {"_id": {"$in": [object_id(session["asset"]["id"]), object_id(note["id"])]}})}
    # Both, or the checks of what the erase left of them below (a loop over these) would check nothing.
    assert len(erased) == 2 and all(a["sha256"] and a["size_bytes"] and a["media_type"] for a in erased.values())

    key = await pseudonym_key(state.db)
    # The plan says what the erase does: the upload's event is one whose size it clears (it said none).
    assert (await erasure_plan(state.db, ALICE)).events_cleared == 1
    result = await erase_user(state.db, ALICE, key, state.stores)
    assert set(result.deleted_assets) == {session["asset"]["id"], note["id"]} and frozen in result.kept_assets
    assert result.events_cleared == 1
    for asset in erased.values():
        assert await places_naming(state.db, asset["sha256"]) == [], asset["name"]
        if asset["size_bytes"] == len(data):  # a size of its own (31,337); the note's few dozen bytes are any small number
            assert await places_holding_number(state.db, asset["size_bytes"]) == [], asset["name"]
        left = await state.db.assets.find_one({"_id": asset["_id"]})
        assert left["status"] == "DELETED" and not {"sha256", "size_bytes", "media_type"} & left.keys()
    status = await state.db.events.find_one({"event_type": "ASSET_STATUS"})
    assert json.loads(status["data"]["json"]) == {"assetId": session["asset"]["id"], "status": "ACTIVE",
                                                  "sizeBytes": None, "mount": "local"}  # the event stays
    # Kept whole: the READY version pins it, and names it by the digest it froze (README, Privacy requests).
    kept = await state.db.assets.find_one({"_id": object_id(frozen)})
    assert kept["status"] == "ACTIVE" and kept["sha256"] and kept["size_bytes"]

    before = await every_document(state.db)
    again = await erase_user(state.db, ALICE, key, state.stores)
    assert (again.deleted_assets, again.uploads_cleared, again.events_cleared, again.anonymized) == ([], 0, 0, {})
    assert await every_document(state.db) == before  # a rerun changes nothing
    plan = await erasure_plan(state.db, ALICE)
    assert (plan.contents_cleared, plan.events_cleared) == (0, 0)
    checked = await verify(await DatasetVersion.get(object_id(version["id"])), state.stores)
    assert checked.ok, checked.problems  # deep: its content file read again too




async def every_document(db) -> dict[str, list[dict]]:
    """Every stored document, by collection, in `_id` order (but the live feed's ring, and the server
    processes' heartbeats, which move on their own every few seconds: a rerun's check met one tick)."""
    return {name: await db[name].find().sort("_id", 1).to_list() for name in sorted(await db.list_collection_names())
            if name not in NOT_SEARCHED | {WRITERS_COLLECTION}}
