"""A multipart completion cut short at any step is finished by a retry of completeUpload or, on its
own, by the reconciler (services/uploads/assembly.py, services/uploads/interrupted.py): the asset
turns ACTIVE with the SHA-256 of its bytes, or FAILED when they differ from what was declared, and
a session it cannot finish keeps its bytes for its client.

A crash is simulated by raising from a real step of the completion, on the real stores and
database; then the claim the dead server held is put back as it would be found (stale), since
the raised error let the completion release it."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from documents.clock import utcnow
from documents.upload import UploadClaim, UploadSession, UploadStatus
from graphlake.settings import Settings
from resolvers.context import AppState
from services.uploads import assembly, completion
from services.uploads.claims import CLAIM_SECONDS
from services.uploads.completion import complete_upload
from services.uploads.reconciler import reconcile
from storage import LocalStore
from tests.operations import Api, object_id
from tests.test_uploads import MIB, complete, multipart_from_one_mib, payload, put, start


class Crash(Exception):
    """The server died here: nothing after this point ran."""


def crash_after(step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def crashing(*args: Any, **kwargs: Any) -> Any:
        await step(*args, **kwargs)
        raise Crash

    return crashing


async def raise_crash(*args: Any, **kwargs: Any) -> None:
    raise Crash


def inject(step: str, state: AppState, mount: str, patched: pytest.MonkeyPatch) -> None:
    """Make the completion die at `step`."""
    store = state.stores[mount]
    if step == "marked":  # the session is marked, the parts not yet joined
        patched.setattr(assembly, "mark_completing", crash_after(assembly.mark_completing))
    elif step == "moved":  # the local mount renamed the parts into place, the part markers still there
        patched.setattr(store, "abort_multipart", raise_crash)
    elif step == "joined":  # the store joined the parts: they are gone, the object is whole at its key
        patched.setattr(store, "complete_multipart", crash_after(store.complete_multipart))
    elif step == "verified":  # the object was checked (and removed, if it differed), nothing closed yet
        patched.setattr(completion, "finish_many", raise_crash)


async def uploaded(api: Api, token: str, settings: Settings, mount: str, data: bytes, **fields: object) -> dict:
    """A multipart session with every part stored."""
    with multipart_from_one_mib(settings):
        session = await start(api, token, data, mount, **fields)
    size = session["partSizeBytes"]
    assert len(session["parts"]) == 2
    for part in session["parts"]:
        offset = (part["partNumber"] - 1) * size
        assert (await put(part["url"], data[offset:offset + size])).status_code == 200
    return session


async def crash_completing(state: AppState, mount: str, session_id: str, step: str,
                           monkeypatch: pytest.MonkeyPatch) -> UploadSession:
    with monkeypatch.context() as patched:
        inject(step, state, mount, patched)
        with pytest.raises(Crash):
            await complete_upload(object_id(session_id), state.stores, state.feed, "test", 10)
    # What a server killed there leaves: its claim, gone stale by the time anyone looks again.
    await UploadClaim.get_pymongo_collection().insert_one(
        {"_id": object_id(session_id), "claimed_at": utcnow() - timedelta(seconds=CLAIM_SECONDS + 1)})
    stored = await UploadSession.get(object_id(session_id))
    assert stored is not None and stored.status is UploadStatus.OPEN and stored.completing_at is not None
    return stored


async def leftovers(state: AppState, mount: str, session: UploadSession) -> bool:
    """Whether anything of the multipart upload itself (parts, their markers) is left in the store."""
    store = state.stores[mount]
    assert session.multipart_id is not None
    if isinstance(store, LocalStore):
        return store.upload_dir(session.multipart_id).exists()
    return bool(await store.list_parts(session.key, session.multipart_id))


CASES = [(mount, step) for mount in ("local", "lab") for step in ("marked", "moved", "joined", "verified")
         if not (step == "moved" and mount != "local")]


@pytest.mark.parametrize("finisher", ["retry", "reconciler"])
@pytest.mark.parametrize(("mount", "step"), CASES)
async def test_a_completion_cut_short_is_finished(api: Api, contributor: str, state: AppState, settings: Settings,
                                                  monkeypatch: pytest.MonkeyPatch, mount: str, step: str,
                                                  finisher: str) -> None:
    data = payload(9 * MIB, seed=31)
    session = await uploaded(api, contributor, settings, mount, data)
    stored = await crash_completing(state, mount, session["id"], step, monkeypatch)
    store = state.stores[mount]
    if step != "marked":  # the state the issue describes: no parts to list, the whole file at its key
        assert await store.list_parts(stored.key, stored.multipart_id) == []
        assert (await store.stat(stored.key)).size == len(data)

    if finisher == "retry":
        asset = await complete(api, contributor, session["id"])
    else:
        await reconcile(state.stores, state.feed)
        asset = (await api.data("Asset", {"id": session["asset"]["id"]}, token=contributor))["asset"]
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(data).hexdigest()
    assert asset["sizeBytes"] == len(data) and await store.sha256(stored.key) == asset["sha256"]
    assert (await UploadSession.get(stored.id)).status is UploadStatus.COMPLETED
    assert not await leftovers(state, mount, stored)


@pytest.mark.parametrize("finisher", ["retry", "reconciler"])
@pytest.mark.parametrize("mount", ["local", "lab"])
async def test_a_completion_cut_short_after_finding_a_mismatch_fails_the_upload(
        api: Api, contributor: str, state: AppState, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        mount: str, finisher: str) -> None:
    """It had joined the parts, found another SHA-256 than the declared one and removed the object:
    nothing is left to complete, and the upload ends as that completion had decided."""
    data = payload(9 * MIB, seed=32)
    session = await uploaded(api, contributor, settings, mount, data, sha256="0" * 64)
    stored = await crash_completing(state, mount, session["id"], "verified", monkeypatch)
    assert await state.stores[mount].stat(stored.key) is None

    if finisher == "retry":
        error = await api.error("CompleteUpload", {"input": {"id": session["id"]}}, token=contributor)
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and "object is gone" in error["message"]
    else:
        await reconcile(state.stores, state.feed)
    asset = (await api.data("Asset", {"id": session["asset"]["id"]}, token=contributor))["asset"]
    assert asset["status"] == "FAILED"
    assert (await UploadSession.get(stored.id)).status is UploadStatus.ABORTED
    assert not await leftovers(state, mount, stored)


async def test_the_reconciler_finishes_a_completion_cut_short_past_the_sessions_expiry(
        api: Api, contributor: str, state: AppState, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The completion began in time: its object is kept and verified, never expired and deleted."""
    data = payload(9 * MIB, seed=33)
    session = await uploaded(api, contributor, settings, "local", data)
    stored = await crash_completing(state, "local", session["id"], "joined", monkeypatch)
    await UploadSession.get_pymongo_collection().update_one({"_id": stored.id},
                                                            {"$set": {"expires_at": utcnow() - timedelta(hours=1)}})
    assert await reconcile(state.stores, state.feed) == 0  # none expired
    asset = (await api.data("Asset", {"id": session["asset"]["id"]}, token=contributor))["asset"]
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(data).hexdigest()


async def test_a_retry_finishes_what_an_unmarked_completion_left(
        api: Api, contributor: str, state: AppState, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A completion by a version that marked nothing died after joining: the object at its key with
    the parts gone says how far it got, so a retry checks the object instead of asking for parts."""
    data = payload(9 * MIB, seed=34)
    session = await uploaded(api, contributor, settings, "local", data)
    stored = await crash_completing(state, "local", session["id"], "moved", monkeypatch)
    await UploadSession.get_pymongo_collection().update_one({"_id": stored.id}, {"$unset": {"completing_at": ""}})
    asset = await complete(api, contributor, session["id"])
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(data).hexdigest()
    assert not await leftovers(state, "local", stored)


async def test_a_marked_session_missing_parts_is_handed_back_with_its_bytes(
        api: Api, contributor: str, state: AppState, settings: Settings) -> None:
    """Marked, yet not every part is there (nothing can have been joined): the reconciler cannot
    finish it, so it clears the mark and keeps the parts; the client sends the rest and completes."""
    data = payload(9 * MIB, seed=35)
    with multipart_from_one_mib(settings):
        session = await start(api, contributor, data, "local")
    size = session["partSizeBytes"]
    assert (await put(session["parts"][0]["url"], data[:size])).status_code == 200
    stored = await UploadSession.get(object_id(session["id"]))
    await assembly.mark_completing(stored)

    await reconcile(state.stores, state.feed)
    handed_back = await UploadSession.get(stored.id)
    assert handed_back.status is UploadStatus.OPEN and handed_back.completing_at is None
    assert [p.number for p in await state.stores["local"].list_parts(stored.key, stored.multipart_id)] == [1]
    assert (await put(session["parts"][1]["url"], data[size:])).status_code == 200
    asset = await complete(api, contributor, session["id"])
    assert asset["status"] == "ACTIVE" and asset["sha256"] == hashlib.sha256(data).hexdigest()
