"""The web app in a real browser: Chromium from the OS packages (make test installs it), driven by
tests/js/webapp_browser.cjs with playwright-core, against the suite's live server.

One walk through the app, as a lab member would: sign in (a wrong token first); page through the
assets by scrolling, search them (predicates too) and open one (its collections past the first 20
too, kept on Back from one of them); watch events arrive live (filtered,
paused, resumed) and scroll back to older ones; see a node's utilization (and scroll to the
second page of nodes); upload an image by the file input, a text by drag and
drop, a folder into a collection (picked, and dropped) and a big file in parts, cut off and resumed (by Retry, and by
picking the file again after a page reload); see the image's thumbnail in the grid and its
annotations of every kind drawn over it (keypoints with their skeleton; a person's records solid, a
model's dashed with their scores, whatever their set's purpose; a mask outlined from one download,
and drawn unoutlined when the page may not read it; a corrected record
hidden, then faded) and verify one; browse a
collection, come Back to the assets, collections and datasets lists where they were scrolled (past
their first page), search the datasets by name, browse a dataset and the difference of two versions, download a version's content file, verify
a version intact and one changed behind its back, and scroll a dataset's many versions; check a VIEWER's read-only app, and that VIEWER sent back to sign-in,
with the reason, when its token is revoked while the app is open. The test acts on the server where
the walk needs it (logging events, adding annotations, revoking) and checks what the uploads stored.

GRAPHLAKE_WEBAPP_SCREENSHOTS=DIR also saves screenshots of the main pages there (the README's are
made so: see README, Web app).

Beside the walk, short scenarios (tests/js/webapp_scenarios.cjs), a test each, for what needs data or
services of its own: Back to the utilization page, a search typed again (its pages then start afresh),
a large mask outlined while the page stays live, a mask on a bucket without CORS for the app, an
upload kept for resuming by one of two tokens signed in on the same browser, a value's download
refused when another page answers in place of the content route, the app and GraphiQL behind a proxy
that serves them under a path.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import httpx
from PIL import Image

from documents.annotation import AnnotationRecord
from documents.dataset import DatasetVersion, VersionMember
from documents.roles import Role
from graphlake import PROJECT_ROOT
from graphlake.app import create_app
from graphlake.local_services import find_binary, free_port, start_minio
from graphlake.settings import S3MountSettings, Settings
from tests import factories
from tests.conftest import MakeToken, S3Service, Served
from tests.operations import Api, object_id
from tests.processes import path_proxy, serving
from tests.test_uploads import complete, put
from tests.waiting import live_subscribers, wait_for

CHROMIUM = Path(os.environ.get("GRAPHLAKE_TEST_CHROMIUM", "/usr/bin/chromium"))
WEBAPP = PROJECT_ROOT / "webapp"
SCRIPT = PROJECT_ROOT / "tests" / "js" / "webapp_browser.cjs"
SCENARIOS = PROJECT_ROOT / "tests" / "js" / "webapp_scenarios.cjs"
STEP_SECONDS = 60  # the longest a milestone of the walk may take (the browser's own waits are 15 s)
ASSETS = 55  # more than the app's page of 50, so the list must load a second page on scroll
VERSIONS = 52  # a dataset's versions, also a page and more
OLDER_EVENTS = 55  # events logged before the walk, beyond the events page's first 50
FILED_IN = 25  # collections the searched asset is in: its page lists 20, then the rest on "Show more"
BUSY_NODES = 55  # nodes busy five minutes each beside the robot: the utilization page scrolls to a second page
SHELVED = 60  # datasets beside the walk's two: the datasets list scrolls to a second page of 12


class Walk:
    """The browser script's side of the conversation: its milestone lines, and lines sent back."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr = b""

    async def expect(self, milestone: str) -> str:
        """The rest of the next line, which must start with `milestone`."""
        assert self.process.stdout is not None
        try:
            line = (await asyncio.wait_for(self.process.stdout.readline(), STEP_SECONDS)).decode().strip()
        except TimeoutError:
            line = f"(nothing within {STEP_SECONDS} s)"
        if not line.startswith(milestone):
            with contextlib.suppress(ProcessLookupError):  # it may have ended already
                self.process.kill()
            _, self.stderr = await self.process.communicate()
            raise AssertionError(f"waited for {milestone}, got {line or 'the end of the script'}:\n{self.stderr.decode()}")
        return line[len(milestone):].strip()

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")


def _png(width: int, height: int) -> bytes:
    """A grey gradient: the shapes drawn over it show in the README's screenshot."""
    out = io.BytesIO()
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image.save(out, format="PNG")
    return out.getvalue()


def _files(root: Path, tag: str, big_bytes: int) -> dict[str, Path]:
    """What the walk uploads: an image, a folder of two files, a folder to drop, and two files as big
    as the multipart threshold (8 parts of 8 MiB)."""
    image = root / f"plate-{tag}.png"
    image.write_bytes(_png(320, 240))
    folder = root / f"run-{tag}"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a\n")
    (folder / "sub" / "b.csv").write_text("x,y\n1,2\n")
    big = root / f"scan-{tag}.bin"
    big.write_bytes(os.urandom(big_bytes))
    dropped = root / f"dropped-{tag}"  # dragged onto the drop zone, as from the desktop
    (dropped / "deeper").mkdir(parents=True)
    (dropped / "deeper" / "c.json").write_text('{"c": 1}\n')
    again = root / f"scan-after-reload-{tag}.bin"
    again.write_bytes(os.urandom(big_bytes))
    return {"image": image, "folder": folder, "big": big, "again": again, "dropped": dropped}


async def _seed(api: Api, token: str, tag: str) -> None:
    """What the walk finds before it uploads anything: ASSETS value assets (one with labels, metadata
    and a value to search by, filed in FILED_IN collections), a node's thirty busy minutes ended twenty minutes ago (the utilization
    page's row) and BUSY_NODES nodes' five minutes each, OLDER_EVENTS events the events page loads
    as it scrolls, and an event newer than those, which its first query shows (its live stream then
    starts just after it, with `after`)."""
    for i in range(ASSETS - 1):  # the first a long series, which its page draws a hundred points of at first
        await factories.value_asset(api, token, f"filler-{i:02d}", {"i": i} if i else {"points": list(range(5000))})
    reading = await factories.value_asset(api, token, f"reading-{tag}", {"temperature": 21.5, "unit": "C"},
                                          labels=[f"batch-{tag}"], metadata={"plate": 7, "operator": "alice"})
    for i in range(FILED_IN):  # more than its page lists at first
        bin_ = await factories.collection(api, token, f"bin-{tag}-{i:02d}")
        await api.data("AddToCollection", {"input": {"collectionId": bin_["id"], "items": [{"assetId": reading["id"]}]}},
                       token=token)
    now = datetime.now(UTC)
    sessions = [{"eventType": kind, "source": {"nodeId": node}, "timestamp": (now - timedelta(minutes=ago)).isoformat()}
                for node, (start, stop) in [("ot2-robot", (50, 20)), *((f"pipette-{n:02d}", (40, 35)) for n in range(BUSY_NODES))]
                for kind, ago in (("NODE_START", start), ("NODE_STOP", stop))]
    await api.data("LogEvents", {"inputs": sessions}, token=token)
    await api.data("LogEvents", {"inputs": [{"eventType": "WEBAPP_CHECK", "message": f"older event {tag} {i:02d}"}
                                            for i in range(OLDER_EVENTS)]}, token=token)
    await api.data("LogEvent", {"input": {"eventType": "WEBAPP_CHECK", "message": f"logged before {tag}"}}, token=token)


async def _mask(api: Api, token: str, name: str, size: tuple[int, int] = (320, 240), mount: str | None = None) -> str:
    """A mask as its own image asset (the image's gradient: its lower half shows), uploaded as the
    app does (into `mount`, else the default); its id. Its own name tells its downloads from the
    image's apart in the page. Any image asset so, in fact."""
    data = _png(*size)
    session = (await api.data("CreateUpload", {"input": {"name": name, "sizeBytes": len(data), "mediaType": "image/png",
                                                         "sha256": hashlib.sha256(data).hexdigest(), "mount": mount}},
                              token=token))["createUpload"]
    assert (await put(session["url"], data, session["headers"])).status_code == 200
    return (await complete(api, token, session["id"]))["id"]


class MaskedImage(NamedTuple):
    image_id: str
    name: str
    mask_name: str


async def _masked_image(api: Api, token: str, size: tuple[int, int], mask_mount: str | None = None) -> MaskedImage:
    """An image (a gradient) with a model's mask of it (the same gradient, stored in `mask_mount`) as
    its one record: the image's id and name, and the mask's name."""
    tag = uuid.uuid4().hex[:8]
    name = f"plate-{tag}.png"
    image_id = await _mask(api, token, name, size)
    mask_id = await _mask(api, token, f"mask-{tag}.png", size, mask_mount)
    schema = await factories.schema(api, token)
    model = await factories.annotation_set(api, token, schema["id"], "PREDICTION", {"kind": "MODEL", "name": "segmenter"})
    await api.data("AddAnnotations", {"setId": model["id"], "records": [
        {"assetId": image_id, "kind": "MASK", "label": "dent", "score": 0.8, "geometry": {"mask": {"assetId": mask_id}}}]},
                   token=token)
    return MaskedImage(image_id, name, f"mask-{tag}.png")


async def _annotate(api: Api, token: str, image_id: str, mask_name: str) -> str:
    """Ground truth (a box, a polygon, then that polygon corrected) and a model's predictions of every
    other kind, with a person's box among them, in two sets (the viewer toggles sets); returns the
    ground truth's set."""
    mask_id = await _mask(api, token, mask_name)
    schema = await factories.schema(api, token)
    truth = await factories.annotation_set(api, token, schema["id"])
    records = [
        {"kind": "BBOX", "label": "scratch", "geometry": {"bbox": {"x": 20, "y": 30, "width": 100, "height": 60}}},
        {"kind": "POLYGON", "label": "dent",
         "geometry": {"polygon": {"points": [{"x": 200, "y": 40}, {"x": 300, "y": 80}, {"x": 240, "y": 200}]}}},
    ]
    added = (await api.data("AddAnnotations", {"setId": truth["id"], "records": [{"assetId": image_id, **r} for r in records]},
                            token=token))["addAnnotations"]["ids"]
    # The polygon corrected: the viewer draws the correction, and the one it replaced only when asked.
    await api.data("SupersedeAnnotation", {"input": {"id": added[1], "reason": "the dent is smaller", "record": {
        "assetId": image_id, "kind": "POLYGON", "label": "dent",
        "geometry": {"polygon": {"points": [{"x": 210, "y": 50}, {"x": 280, "y": 80}, {"x": 240, "y": 160}]}}}}}, token=token)
    model = await factories.annotation_set(api, token, schema["id"], "PREDICTION",
                                           {"kind": "MODEL", "name": "detector", "version": "3"}, name="detector-v3")
    predictions = [
        {"kind": "ROTATED_BBOX", "label": "scratch", "score": 0.91,
         "geometry": {"rotatedBbox": {"cx": 160, "cy": 150, "width": 80, "height": 30, "angle": 30}}},
        {"kind": "POLYLINE", "label": "scratch", "score": 0.55,
         "geometry": {"polyline": {"points": [{"x": 10, "y": 220}, {"x": 90, "y": 180}, {"x": 150, "y": 215}]}}},
        {"kind": "KEYPOINTS", "label": "dent", "score": 0.7, "geometry": {"keypoints": {"points": [
            {"name": "tip", "x": 250, "y": 60, "visible": True}, {"name": "base", "x": 270, "y": 150, "visible": True},
            {"name": "hidden", "x": 5, "y": 5, "visible": False}]}},
         # As a COCO import keeps a category's skeleton: 1-based pairs. The edge to the hidden one is not drawn.
         "attributes": {"skeleton": [[1, 2], [2, 3]]}},
        {"kind": "MASK", "label": "dent", "score": 0.8, "geometry": {"mask": {"assetId": mask_id}}},
        # A person's correction among the model's records: drawn as a person's, whatever the set's purpose.
        {"kind": "BBOX", "label": "dent", "source": {"kind": "HUMAN", "name": "bob"},
         "geometry": {"bbox": {"x": 180, "y": 20, "width": 60, "height": 40}}},
    ]
    await api.data("AddAnnotations", {"setId": model["id"], "records": [{"assetId": image_id, **p} for p in predictions]},
                   token=token)
    # Labels of the whole image, enough that the records listed run past one page (200): the rest come
    # with "Show more".
    tags = await factories.annotation_set(api, token, schema["id"], name="tags")
    await api.data("AddAnnotations", {"setId": tags["id"], "records": [
        {"assetId": image_id, "kind": "CLASSIFICATION", "label": "scratch"} for _ in range(200)]}, token=token)
    return truth["id"]


async def _file_and_version(api: Api, token: str, tag: str, image_id: str, truth_id: str) -> str:
    """The image filed in a collection; a dataset whose v2 drops one of v1's three datums and adds two
    (v1's id is returned)."""
    plates = await factories.collection(api, token, f"plates-{tag}")
    await api.data("AddToCollection", {"input": {"collectionId": plates["id"], "items": [
        {"assetId": image_id, "path": "plates/a.png", "split": "TRAIN"}]}}, token=token)
    widgets = await factories.dataset(api, token, f"widgets-{tag}")
    datums = await factories.datums(api, token, 3)
    v1 = await factories.version(api, token, widgets["id"], "v1", addDatums=[d["id"] for d in datums], addAnnotationSets=[truth_id])
    more = await factories.datums(api, token, 2)
    await factories.version(api, token, widgets["id"], "v2", parentId=v1["id"],
                            addDatums=[d["id"] for d in more], removeDatums=[datums[0]["id"]])
    return v1["id"]


async def _many_versions(api: Api, token: str, name: str) -> None:
    """A dataset of more versions than the app's page (empty ones: only their listing matters)."""
    dataset = await factories.dataset(api, token, name)
    for number in range(1, VERSIONS + 1):
        await factories.version(api, token, dataset["id"], f"v{number}")


async def _sha256_of(api: Api, token: str, asset_id: str) -> str:
    """The SHA-256 the server verified, once the asset is ACTIVE."""
    stored = (await api.data("Asset", {"id": asset_id}, token=token))["asset"]
    assert stored["status"] == "ACTIVE", stored
    return stored["sha256"]


def _node() -> str:
    """Node.js, once Chromium, the built app and playwright-core are there too."""
    assert CHROMIUM.exists(), f"Chromium is missing at {CHROMIUM}: `make test` installs it (make browser), " \
                              "or apt-get install -y --no-install-recommends chromium"
    node = shutil.which("node")
    assert node, "Node.js is needed (make installs and builds the web app with npm)"
    assert (WEBAPP / "dist" / "index.html").is_file(), "the web app is not built: run `make webapp` (make test does)"
    assert (WEBAPP / "node_modules" / "playwright-core").is_dir(), "playwright-core is missing: run `make webapp`"
    return node


async def _scenario(base_url: str, token: str, tmp_path: Path, scenario: str, **config: object) -> str:
    """Runs one scenario of tests/js/webapp_scenarios.cjs, signed in with `token`; fails with the step it
    failed at (its screenshot and page text in tmp_path). Returns what the scenario printed."""
    process = await asyncio.create_subprocess_exec(
        _node(), str(SCENARIOS), json.dumps({"baseUrl": base_url, "chromium": str(CHROMIUM), "token": token,
                                              "scenario": scenario, "artifacts": str(tmp_path), **config}),
        env={**os.environ, "WEBAPP_NODE_MODULES": str(WEBAPP / "node_modules")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 3 * STEP_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_webapp_in_chromium(served: Served, settings: Settings, api: Api, make_token: MakeToken, tmp_path: Path) -> None:
    node = _node()
    contributor = await make_token(Role.CONTRIBUTOR, name="lab-member")
    viewer = await make_token(Role.VIEWER, name="webapp-viewer")
    tag = uuid.uuid4().hex[:8]
    await _seed(api, contributor, tag)
    for i in range(SHELVED):  # older than the walk's datasets, which the first page shows
        await factories.dataset(api, contributor, f"shelved-{tag}-{i:02d}")
    await _many_versions(api, contributor, f"many-{tag}")
    files = _files(tmp_path, tag, settings.multipart_threshold_bytes)
    inbox = await factories.collection(api, contributor, f"inbox-{tag}")
    for i in range(50):  # newer than the inbox, so the upload page's picker must search for it
        await factories.collection(api, contributor, f"shelf-{tag}-{i:02d}")
    folder_files = [f"{files['folder'].name}/a.txt", f"{files['folder'].name}/sub/b.csv"]
    dropped_folder_files = [f"{files['dropped'].name}/deeper/c.json"]
    dropped_text = f"dropped by the browser test {tag}\n"
    screenshots = os.environ.get("GRAPHLAKE_WEBAPP_SCREENSHOTS")
    if screenshots:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    config = {
        "baseUrl": served.base_url, "chromium": str(CHROMIUM), "token": contributor, "viewerToken": viewer,
        "assetCount": ASSETS, "assetName": f"reading-{tag}", "assetLabel": f"batch-{tag}", "valueText": "temperature",
        "eventType": "WEBAPP_CHECK", "earlierEvent": f"logged before {tag}", "olderEvent": f"older event {tag}", "olderEvents": OLDER_EVENTS, "busyNodes": BUSY_NODES, "filedIn": FILED_IN,
        "imagePath": str(files["image"]), "droppedName": f"notes-{tag}.txt", "droppedText": dropped_text,
        "inbox": inbox["name"], "folderPath": str(files["folder"]), "folderFiles": folder_files,
        "droppedFolderPath": str(files["dropped"]), "droppedFolderFiles": dropped_folder_files, "bigPath": str(files["big"]),
        "bigReloadPath": str(files["again"]),
        "maskName": f"mask-{tag}.png", "collection": f"plates-{tag}", "dataset": f"widgets-{tag}", "manyVersions": f"many-{tag}", "versionCount": VERSIONS, "artifacts": str(tmp_path), "screenshots": screenshots,
    }
    process = await asyncio.create_subprocess_exec(
        node, str(SCRIPT), json.dumps(config), env={**os.environ, "WEBAPP_NODE_MODULES": str(WEBAPP / "node_modules")},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    walk = Walk(process)
    try:
        assert await walk.expect("SIGNED_IN") == "lab-member"
        assert (await walk.expect("ASSET_SHOWN")).startswith("/assets/")

        await walk.expect("EVENTS_LIVE")
        events = served.app.state.graphlake.events
        await wait_for(lambda: live_subscribers(events) >= 1, what="the page's subscription to listen")
        await api.data("LogEvent", {"input": {"eventType": "OTHER_TYPE", "message": "not-for-this-filter"}}, token=contributor)
        first, second = f"first live event {tag}", f"second live event {tag}"
        await api.data("LogEvent", {"input": {"eventType": "WEBAPP_CHECK", "message": first, "level": "WARNING",
                                              "source": {"nodeId": "ot2-robot"}, "data": {"plate": 7, "wells": 96}}},
                       token=contributor)
        walk.send(first)
        await walk.expect("PAUSED")
        await api.data("LogEvent", {"input": {"eventType": "WEBAPP_CHECK", "message": second}}, token=contributor)
        walk.send(second)
        await walk.expect("PAUSE_OK")
        await walk.expect("OLDER_EVENTS")
        await walk.expect("ORIGIN_OK")

        # What the uploads stored: the very bytes, checked by the server against the browser's SHA-256.
        image_id = await walk.expect("UPLOADED")
        stored = (await api.data("Asset", {"id": image_id}, token=viewer))["asset"]
        assert (stored["name"], stored["mediaType"], stored["sizeBytes"]) == (files["image"].name, "image/png",
                                                                              files["image"].stat().st_size)
        assert await _sha256_of(api, viewer, image_id) == hashlib.sha256(files["image"].read_bytes()).hexdigest()
        dropped_id = await walk.expect("DROPPED")
        assert await _sha256_of(api, viewer, dropped_id) == hashlib.sha256(dropped_text.encode()).hexdigest()
        await walk.expect("FOLDER_UPLOADED")
        filed = (await api.data("Collection", {"id": inbox["id"]}, token=viewer))["collection"]["items"]["edges"]
        assert sorted(e["node"]["path"] for e in filed) == sorted(folder_files + dropped_folder_files)
        # Parts 1 and 2 went, 3 was cut off; the retry sent 3 to 8 only, and the server checked the whole.
        before, resent, big_id = (await walk.expect("RESUMED")).split()
        assert (int(before), int(resent)) == (3, 6)
        assert await _sha256_of(api, viewer, big_id) == hashlib.sha256(files["big"].read_bytes()).hexdigest()
        # The same, with a page reload between: the session kept in localStorage is found again by the file.
        before, resent, again_id = (await walk.expect("RELOAD_RESUMED")).split()
        assert (int(before), int(resent)) == (3, 6)
        assert await _sha256_of(api, viewer, again_id) == hashlib.sha256(files["again"].read_bytes()).hexdigest()

        assert await walk.expect("THUMBNAIL") == "256 192"  # the 320 x 240 image, at most 256 a side
        truth_id = await _annotate(api, contributor, image_id, config["maskName"])
        v1_id = await _file_and_version(api, contributor, tag, image_id, truth_id)
        walk.send("ANNOTATED")
        assert await walk.expect("OVERLAY_OK") == "0 0 320 240"
        await walk.expect("VERIFIED")
        verified = await AnnotationRecord.find({"verified": True}).to_list()
        assert [(r.label, r.verified_by) for r in verified] == [("scratch", "token:lab-member")]
        await walk.expect("COLLECTION_OK")
        # v1's content file, downloaded by the app's button: the bytes the version recorded.
        name, saved = (await walk.expect("DATASET_OK")).split()
        assert name == f"widgets-{tag}-v1.jsonl"
        v1 = await DatasetVersion.get(object_id(v1_id))
        assert v1 is not None and v1.content is not None
        assert hashlib.sha256(Path(saved).read_bytes()).hexdigest() == v1.content.sha256
        assert len(Path(saved).read_text().splitlines()) == 3
        await walk.expect("VERIFIED_V1")
        v2 = await DatasetVersion.find_one({"parent_id": object_id(v1_id)})
        assert v2 is not None
        changed = await VersionMember.get_pymongo_collection().update_one({"version_id": v2.id}, {"$set": {"split": "TEST"}})
        assert changed.modified_count == 1
        walk.send("TAMPERED")
        await walk.expect("VERSIONS_CHECKED")
        await walk.expect("VERSIONS_PAGED")

        await walk.expect("VIEWER_OK")
        await walk.expect("VIEWER_LIVE")
        admin = await make_token(Role.ADMIN)
        tokens = (await api.data("ApiTokens", token=admin))["apiTokens"]["edges"]
        viewer_id = next(e["node"]["id"] for e in tokens if e["node"]["name"] == "webapp-viewer")
        await api.data("RevokeApiToken", {"id": viewer_id}, token=admin)
        walk.send("REVOKED")
        await walk.expect("REVOKED_OK")
        await walk.expect("DONE")
        assert await asyncio.wait_for(process.wait(), STEP_SECONDS) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_back_to_utilization_keeps_its_groups(served: Served, api: Api, make_token: MakeToken, tmp_path: Path) -> None:
    """Back to the utilization page from another shows the window chosen, the groups it had loaded
    (past its first page of 50) and where it was scrolled, as Back to the other lists does."""
    token = await make_token(Role.CONTRIBUTOR)
    now = datetime.now(UTC)
    await api.data("LogEvents", {"inputs": [
        {"eventType": kind, "source": {"nodeId": node}, "timestamp": (now - timedelta(minutes=ago)).isoformat()}
        for node in ["ot2-robot", *(f"pipette-{n:02d}" for n in range(BUSY_NODES))]
        for kind, ago in (("NODE_START", 40), ("NODE_STOP", 35))]}, token=token)
    await _scenario(served.base_url, token, tmp_path, "utilizationBack", rows=BUSY_NODES + 1)


async def test_a_search_typed_again_starts_at_its_first_page(served: Served, api: Api, make_token: MakeToken,
                                                            tmp_path: Path) -> None:
    """A list remembers the pages of the search it shows only: a search typed again, after another,
    starts at its first page, and Back shows the pages of the search that was shown, not those an
    earlier showing of it had loaded."""
    token = await make_token(Role.CONTRIBUTOR)
    for i in range(60):
        await factories.collection(api, token, f"shelf-{i:02d}")
    await _scenario(served.base_url, token, tmp_path, "searchTypedAgain", search="shelf", rows=60,
                    narrower="shelf-0", narrowerRows=10)


async def test_an_upload_kept_for_resuming_is_its_tokens_alone(served: Served, api: Api, make_token: MakeToken,
                                                                tmp_path: Path) -> None:
    """Two tokens on one browser (a shared lab machine), the same file: the first's upload is cut off
    and kept; the second's is a new upload, not a failure (the server shows it the first's session,
    but without URLs to send to), and leaves the first's kept; the first then resumes its own; and a
    sign-out forgets every upload kept. Before, the second failed for good ("the upload session has
    neither a URL nor parts"), whatever it tried."""
    first = await make_token(Role.CONTRIBUTOR, name=f"first-{uuid.uuid4().hex[:6]}")
    second = await make_token(Role.CONTRIBUTOR, name=f"second-{uuid.uuid4().hex[:6]}")
    shared = tmp_path / f"plate-{uuid.uuid4().hex[:8]}.csv"
    shared.write_text("well,value\n" + "".join(f"A{i},{i * 7}\n" for i in range(100)))
    printed = await _scenario(served.base_url, first, tmp_path, "keptUploadsAreTheirTokens",
                              otherToken=second, filePath=str(shared))
    mine, theirs = printed.split()
    digest = hashlib.sha256(shared.read_bytes()).hexdigest()
    assert await _sha256_of(api, first, mine) == digest and await _sha256_of(api, first, theirs) == digest
    creators = [(await api.data("Asset", {"id": i}, token=first))["asset"]["createdBy"] for i in (mine, theirs)]
    assert creators[0] != creators[1], creators


async def test_a_value_downloads_only_from_the_content_route(served: Served, api: Api, make_token: MakeToken,
                                                             tmp_path: Path) -> None:
    """Whatever else answers 200 at /assets/ID/content (the dev server's own page did, `npm run dev`
    passing only /graphql and /blobs on) is not saved as the value: the app checks that Graphlake's
    content route answered, naming the asset (X-Graphlake-Id), and says so otherwise."""
    token = await make_token(Role.CONTRIBUTOR)
    name = f"reading-{uuid.uuid4().hex[:8]}"
    asset = await factories.value_asset(api, token, name, {"temperature": 21.5})
    await _scenario(served.base_url, token, tmp_path, "contentOnlyFromGraphlake", assetId=asset["id"], fileName=f"{name}.json")


async def test_the_app_works_behind_a_proxy_under_a_path(served: Served, settings: Settings, api: Api,
                                                         make_token: MakeToken, tmp_path: Path) -> None:
    """GRAPHLAKE_PUBLIC_URL=http://host:port/lake, with a proxy passing /lake/X on as /X: the page
    names its files, and the app its routes, /graphql (and its WebSocket), the content route and
    GraphiQL, under /lake; sign-in, the list, an asset (opened and reloaded), its download, an upload,
    live events and GraphiQL all work there, and nothing is asked for outside it. Before, the page
    asked for /app/assets/... at the proxy's root and stayed blank."""
    token = await make_token(Role.CONTRIBUTOR)
    name = f"reading-{uuid.uuid4().hex[:8]}"
    asset = await factories.value_asset(api, token, name, {"temperature": 21.5})
    upload = tmp_path / f"under-a-path-{uuid.uuid4().hex[:8]}.txt"
    upload.write_text("uploaded through the proxy\n")
    port = free_port()
    async with path_proxy("/lake", port) as proxy_port:
        base_url = f"http://127.0.0.1:{proxy_port}/lake"
        # A second app on the same lake, reached through the proxy (the session's app has no public URL).
        behind = create_app(settings.model_copy(update={"port": port, "public_url": base_url}))
        async with serving(behind, port):
            await _scenario(base_url, token, tmp_path, "underPrefix", assetId=asset["id"], assetName=name,
                            filePath=str(upload))


async def test_a_large_mask_is_outlined_while_the_page_stays_live(served: Served, api: Api, make_token: MakeToken,
                                                                 tmp_path: Path) -> None:
    """A 4000 x 3000 mask is drawn at once and outlined by a worker sent its bytes: the page paints
    frames while the outline is still to come (traced on the page's main thread, it froze the page
    until drawn, outlined, at once); the worker's answer is held by the scenario, so this does not
    pass or fail by how fast the machine traces."""
    token = await make_token(Role.CONTRIBUTOR)
    name = (await _masked_image(api, token, (4000, 3000))).name
    await _scenario(served.base_url, token, tmp_path, "largeMask", imageName=name, size=[4000, 3000])


async def test_a_mask_whose_download_met_a_network_failure_is_read_again_the_next_time_it_is_drawn(
        served: Served, api: Api, make_token: MakeToken, tmp_path: Path) -> None:
    """The page's read of a mask fails as a network failure does (the scenario aborts its requests,
    as a dropped connection would): fetch cannot tell that from a bucket refusing the page (CORS),
    which is kept a minute without an outline; but the mask's <image> fails too, so it is forgotten,
    and the next drawing (Back to the image, the network back) reads it again and outlines it."""
    token = await make_token(Role.CONTRIBUTOR)
    masked = await _masked_image(api, token, (320, 240))
    await _scenario(served.base_url, token, tmp_path, "maskAfterNetworkFailure", imageId=masked.image_id,
                    maskName=masked.mask_name)


async def test_a_mask_on_a_bucket_without_cors_is_drawn_unoutlined_from_one_download(
        served: Served, settings: Settings, make_token: MakeToken, tmp_path: Path) -> None:
    """A mask on an S3 mount whose bucket lets no page of the app's origin read it (MinIO answering
    another origin only): the page tries once to read it, and its <image> draws it from its URL,
    without an outline; Back to the image, and the page's data asked anew (Verify), neither try again
    nor download it again (it was tried, and downloaded, each time)."""
    token = await make_token(Role.CONTRIBUTOR)
    minio = start_minio(find_binary("minio"), tmp_path / "minio", "graphlake", "graphlake-secret",
                        cors_allow_origin="http://elsewhere.invalid")
    try:
        store = S3Service(f"http://127.0.0.1:{minio.port}", "graphlake", "graphlake-secret", "no-cors")
        store.client().create_bucket(Bucket=store.bucket)
        mount = S3MountSettings(bucket=store.bucket, endpoint_url=store.endpoint, access_key_id=store.access_key,
                                secret_access_key=store.secret_key)
        # A second app on the same lake, with that mount too (the first one's mounts are the session's).
        port = free_port()
        second = create_app(settings.model_copy(update={"port": port, "mounts": {**settings.mounts, "nocors": mount}}))
        base_url = f"http://127.0.0.1:{port}"
        async with serving(second, port), httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            image_id = (await _masked_image(Api(http), token, (320, 240), mask_mount="nocors")).image_id
            await _scenario(base_url, token, tmp_path, "unreadableMask", imageId=image_id, storeOrigin=store.endpoint)
    finally:
        minio.stop()
