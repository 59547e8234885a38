"""Uploads: upload sessions, sending the bytes where a session says, and completing.

Bytes never go through GraphQL: the client asks for an upload session, PUTs the file (or its
parts, in parallel) to the signed URLs, or writes it into a local mount it shares with the server
(direct.py), then completes. An interrupted upload resumes from what is already stored (resume.py).
A completion whose answer is lost is asked again, so an upload the server finished is never
reported failed or sent twice. Directories go BATCH_FILES files per createUploads/completeUploads.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graphlake_client import ingest
from graphlake_client import operations as ops
from graphlake_client.direct import file_sha256, shares_directory, write_in_place
from graphlake_client.directories import file_error, make_archive, walk
from graphlake_client.errors import (
    CompletionUnderWay,
    GraphlakeClientError,
    UploadsFailed,
    check_json,
    unnamable,
    wire_time,
)
from graphlake_client.exit_loop import to_thread
from graphlake_client.results import Source
from graphlake_client.resume import ResumeState
from graphlake_client.retries import RETRIES, completion_waits
from graphlake_client.transport import Progress, Transport, TransportOption

BATCH_FILES = 100  # files per createUploads / completeUploads: a directory of small files is not 3 round trips each
# Batches under way at once: while the server completes one (reads back and checks every file), the
# next one is hashed, created and sent. Their files share one gate of `concurrency`.
BATCHES_IN_FLIGHT = 2
# From this size on a file is hashed while it uploads, its digest given at completion: hashing it
# first would hold up its first byte by seconds. Smaller ones declare it up front, which lets S3
# check a single PUT itself instead of the server reading the object back.
LATE_HASH_BYTES = 64 * 1024 * 1024
# A request is handed at most MAX_PART_URLS upload part URLs, and parts are at least MIN_PART_BYTES
# (README, Uploading): a createUploads is kept within them whatever the server's multipart threshold.
MAX_PART_URLS = 10_000
MIN_PART_BYTES = 8 * 1024 * 1024


def part_urls_at_most(size: int) -> int:
    """The most part URLs an upload of `size` bytes can be handed (one if it goes whole)."""
    return min(MAX_PART_URLS, max(1, -(-size // MIN_PART_BYTES)))


def within_part_urls(sizes: list[int]) -> list[range]:
    """Consecutive runs of these uploads (by position) whose parts fit in one request."""
    runs: list[range] = []
    start, parts = 0, 0
    for i, size in enumerate(sizes):
        wanted = part_urls_at_most(size)
        if i > start and parts + wanted > MAX_PART_URLS:
            runs.append(range(start, i))
            start, parts = i, 0
        parts += wanted
    if sizes:
        runs.append(range(start, len(sizes)))
    return runs


def sending_error(path: Path, error: BaseException) -> GraphlakeClientError:
    """What stopped a file's bytes, with a code: the store's refusal or the network's (coded where
    they happen: Transport._store_call), or the file itself (unreadable, gone or changed since it
    was listed)."""
    if isinstance(error, GraphlakeClientError):
        return error
    if isinstance(error, OSError):
        return file_error(path, error)
    return GraphlakeClientError(f"{type(error).__name__}: {error}", "INTERNAL")


class Uploader(Transport):
    """Uploads of files, batches and directories, on top of the transport."""

    def __init__(self, url: str, token: str | None, *, concurrency: int = 4, retries: int = RETRIES,
                 resume: ResumeState | None = None, timeout: float = 300,
                 storage_transport: TransportOption = None, direct_writes: bool = True,
                 graphql_transport: TransportOption = None, server_ingest: bool = True) -> None:
        super().__init__(url, token, retries=retries, timeout=timeout, storage_transport=storage_transport,
                         graphql_transport=graphql_transport)
        if concurrency < 1:  # every transfer waits on a gate of this many slots: 0 waited forever
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.concurrency = concurrency
        self.resume = resume or ResumeState()
        # Where this machine shares a local mount's directory, files are written there and read from
        # there directly (downloads.py); False: always over HTTP.
        self.direct_writes = direct_writes
        # Where the server reads a batch's files itself, it copies them in (ingest.py); False: always upload.
        self.server_ingest = server_ingest
        # Folders this client has cleared of a killed run's temporaries (downloads.py): once each, not
        # once per download (a listing of a folder of 20,000 files took 9 ms).
        self.swept_folders: set[Path] = set()

    # --- where the bytes go
    async def _writes_directly(self, mount: str | None) -> bool:
        return await self._shared_root(mount) is not None

    async def _shared_root(self, mount: str | None) -> Path | None:
        """The directory of a local mount this machine sees itself (its marker file holds the id the
        server reports), or None. Asked of the server once per client, however many files ask at once."""
        if not self.direct_writes:
            return None
        # Once, however many files ask at once: marker files are read on the event loop.
        shared: dict[str | None, Path] = await self._once("shared", self._shared_of_facts)
        return shared.get(mount)

    async def _shared_of_facts(self) -> dict[str | None, Path]:
        return self._shared_mounts(await self._storage_facts())

    async def _storage_facts(self) -> dict[str, Any]:
        """The server's mounts and ingest roots, asked once per client (for direct writes and ingests alike)."""
        facts: dict[str, Any] = await self._once("facts", self._ask_storage_facts)
        return facts

    async def _ask_storage_facts(self) -> dict[str, Any]:
        try:
            return await self.execute(ops.STORAGE_FACTS)
        except GraphlakeClientError as error:
            if "ingestRoots" not in str(error):  # "Cannot query field 'ingestRoots' on type 'Query'."
                raise
            # A server from before ingestRoots: it ingests nothing, and its mounts still tell where direct writes go.
            return {**await self.execute(ops.MOUNTS), "ingestRoots": []}

    @staticmethod
    def _shared_mounts(facts: dict[str, Any]) -> dict[str | None, Path]:
        shared: dict[str | None, Path] = {}
        for found in facts["mounts"]:
            if shares_directory(found["localRoot"], found["localId"]):
                shared[found["name"]] = Path(found["localRoot"])
                if found["isDefault"]:
                    shared[None] = Path(found["localRoot"])
        return shared

    async def _deliver(self, session: dict[str, Any], path: Path, size: int, progress: Progress | None,
                       declared: bool = False) -> str | None:
        """Send the file (of `size` bytes) where the session says (nowhere: an earlier run completed
        it). A file of LATE_HASH_BYTES or more is hashed meanwhile, unless the caller `declared` its
        digest at creation: its digest is returned, for the completion (None: declared at creation)."""
        if session["status"] == "COMPLETED":
            if progress:
                progress(size)
            return None
        if declared or size < LATE_HASH_BYTES:
            await self._send(session, path, size, progress)
            return None
        digest, _ = await asyncio.gather(to_thread(file_sha256, path), self._send(session, path, size, progress))
        return digest

    async def _send(self, session: dict[str, Any], path: Path, total: int, progress: Progress | None) -> None:
        if session.get("directPath"):
            await to_thread(write_in_place, path, Path(session["directPath"]))
            if progress:
                progress(total)
            return
        if session["url"]:
            await self._put(session["url"], path, 0, total, session["headers"] or {}, progress, create_only=True)
            return
        part_size = int(session["partSizeBytes"])
        gate = asyncio.Semaphore(self.concurrency)

        async def send_part(part: dict[str, Any]) -> None:
            offset = (part["partNumber"] - 1) * part_size
            size = min(part_size, total - offset)
            if part["uploaded"]:
                if progress:
                    progress(size)
                return
            async with gate:
                await self._put(part["url"], path, offset, size, {}, progress)

        # Let every part finish before reporting a failure: the parts that made it stay stored,
        # so a rerun resumes with only the missing ones.
        results = await asyncio.gather(*(send_part(part) for part in session["parts"]), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    # --- sessions and their completion
    async def _resumed(self, session_id: str | None) -> dict[str, Any] | None:
        """The session an earlier, interrupted run left for a file (`session_id`, from the resume
        state), if any: still open, or completed by a run that never heard the answer (its asset
        is then the upload)."""
        if session_id is None:
            return None
        try:
            found = (await self.execute(ops.SESSION, {"id": session_id}))["uploadSession"]
        except GraphlakeClientError:
            return None
        if found and found["status"] == "OPEN" and not (found["url"] or found["parts"] or found["directPath"]):
            return None  # open, but its URLs go only to whoever started it (another token): start anew
        return found if found and found["status"] in ("OPEN", "COMPLETED") else None

    async def _complete(self, session_id: str, sha256: str | None, *, look_first: bool = False) -> dict[str, Any]:
        """Complete an upload and return its asset, whatever it takes to learn the outcome.
        Completing is safe to repeat: a lost answer is asked again (`_repeatable`); CONFLICT means
        an earlier attempt finished it (its asset is the answer) or a request is still at it
        (reading a big object back can outlast any timeout), which is waited for. A request that
        died leaves a claim that lapses within half a minute (CLAIM_SECONDS in the server's
        services/uploads/claims.py); the next attempt after that completes the upload itself.
        `look_first`: CONFLICT is already known (a batch's failure, a session found completed),
        so the session is looked at before completing is asked again."""
        async for attempt in completion_waits(self.backoff_seconds):
            with attempt:
                if attempt.num > 1 or not look_first:
                    try:
                        return (await self._repeatable(ops.COMPLETE, {"id": session_id, "sha256": sha256}))["completeUpload"]
                    except GraphlakeClientError as error:
                        if error.code != "CONFLICT":
                            raise
                asset = await self._settled(session_id)
                if asset is None:
                    raise CompletionUnderWay(session_id)  # retried: wait, then ask to complete it again
                return asset
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _settled(self, session_id: str) -> dict[str, Any] | None:
        """The asset of a completed upload; None while it is open (being completed); an error
        once it cannot complete any more (aborted, expired)."""
        session = (await self._repeatable(ops.SETTLED, {"id": session_id}))["uploadSession"]
        if session is None:
            raise GraphlakeClientError(f"no upload session {session_id}", "NOT_FOUND")
        status = session["status"]
        if status == "OPEN" and datetime.fromisoformat(session["expiresAt"]) <= datetime.now(UTC):
            status = "EXPIRED"  # the reconciler has yet to say so
        if status == "COMPLETED":
            return session["asset"]
        if status == "OPEN":
            return None
        raise GraphlakeClientError(f"the upload is {status.lower()}", "CONFLICT")

    @staticmethod
    def _asked(file: Path, fields: dict[str, Any]) -> dict[str, Any]:
        """What a createUpload of `file` asks for but its bytes: the given fields, its name and media
        type taken from the file's name where not given, None left out. The resume key holds it
        (without `direct`: how the bytes go, not what is stored), so a rerun asking otherwise starts anew."""
        asked = {**fields, "name": fields.get("name") or file.name,
                 "mediaType": fields.get("mediaType") or mimetypes.guess_type(file.name)[0] or "application/octet-stream"}
        return {k: v for k, v in asked.items() if v is not None}

    def _resume_key(self, file: Path, fields: dict[str, Any]) -> tuple[str, int]:
        """`file`'s entry in the resume state for this request, and its size (ResumeState.key_and_size)."""
        request = {k: v for k, v in self._asked(file, fields).items() if k != "direct"}
        return ResumeState.key_and_size(self.url, file, request)

    def _stat_key(self, file: Path, fields: dict[str, Any]) -> tuple[str, int] | OSError:
        """_resume_key, or what the file system said of `file` (a batch reports it as that file's failure)."""
        try:
            return self._resume_key(file, fields)
        except OSError as error:
            return error

    @classmethod
    async def _upload_input(cls, file: Path, size: int, **fields: Any) -> dict[str, Any]:
        """createUpload's input for a file of `size` bytes: its size, media type, SHA-256 (unless it
        is big enough to be hashed while it uploads, see `_deliver`), and the given fields. A `sha256`
        among them (one the caller knows the bytes must have: a bundle's manifest) is declared as it
        is, not computed here; the server checks the stored bytes against it and refuses others."""
        sha256 = fields.pop("sha256", None) or (await to_thread(file_sha256, file) if size < LATE_HASH_BYTES
                                                 else None)
        return {k: v for k, v in {**cls._asked(file, fields), "sizeBytes": size, "sha256": sha256}.items() if v is not None}

    # --- public
    async def upload_file(self, path: Path, *, name: str | None = None, media_type: str | None = None,
                          collection_id: str | None = None, collection_path: str | None = None,
                          description: str | None = None, metadata: dict[str, Any] | None = None,
                          labels: list[str] | None = None, mount: str | None = None,
                          progress: Progress | None = None, owner: Source | None = None,
                          data_timestamp: datetime | None = None, resume: bool = True) -> dict[str, Any]:
        """Upload one file, resuming an earlier interrupted upload of the same file if there is one
        (the resume state is shared by the user's processes: one uploading the file now is joined,
        and both get its asset); `resume=False` uploads it in a session of its own, which no other
        upload joins, for a caller that must own the asset it gets (vault.save deletes its asset when
        it loses a race). `owner` (who or what produced it: `{"nodeId": ..., "workflowId": ...}`) and
        `data_timestamp` (an aware datetime: when its data was taken) as for store_value."""
        check_json(metadata, "metadata")
        taken = wire_time(data_timestamp, "data_timestamp")
        fields = {"name": name, "mediaType": media_type, "collectionId": collection_id, "path": collection_path,
                  "description": description, "metadata": metadata, "labels": labels, "mount": mount,
                  "owner": owner, "dataTimestamp": taken}
        try:
            resume_key, size = await to_thread(self._resume_key, path, fields)
            session = await self._resumed(self.resume.get(resume_key)) if resume else None
            if session is None:
                upload = await self._upload_input(path, size, **fields, direct=await self._writes_directly(mount) or None)
                session = (await self.execute(ops.CREATE_UPLOAD, {"input": upload}))["createUpload"]
                if resume:
                    self.resume.put(resume_key, session, path)
            sha256 = await self._deliver(session, path, size, progress)
        except OSError as error:  # the file's own trouble (no permission, gone), as a batch names it
            raise file_error(path, error) from error
        asset = await self._complete(session["id"], sha256, look_first=session["status"] == "COMPLETED")
        if resume:
            self.resume.put(resume_key, None)
        return asset

    async def upload_batch(self, files: list[tuple[Path, dict[str, Any]]], progress: Progress | None = None) -> list[dict[str, Any]]:
        """Upload several files with one createUploads and one completeUploads per BATCH_FILES,
        their bytes `concurrency` files at a time. `files` pairs each path with createUpload
        fields (name, collectionId, path, sha256 when already known, ...). Files an interrupted
        run left open resume. Raises, after completing every file that made it, if any did not.
        BATCHES_IN_FLIGHT batches go at once, their files `concurrency` at a time in all. Files the
        server reads itself (under its ingest roots) it copies in instead (ingest.py). A file whose
        name the server would refuse (a newline in it) fails alone, as one that cannot be read does."""
        if refused := {str(path): error for path, fields in files if (error := unnamable(path, fields))}:
            rest = [(path, fields) for path, fields in files if str(path) not in refused]
            try:
                if rest:
                    await self.upload_batch(rest, progress)
            except UploadsFailed as others:
                raise UploadsFailed({**others.failures, **refused}, len(files)) from None
            raise UploadsFailed(refused, len(files))
        gate = asyncio.Semaphore(self.concurrency)  # file reads and sends, across the batches in flight
        batches = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        found = await self._ingestible(files)

        async def batch(start: int) -> list[dict[str, Any]]:
            chunk = files[start:start + BATCH_FILES]
            async with batches:
                if found is None:
                    return await self._upload_chunk(chunk, progress, gate)
                done: list[dict[str, Any]] = []
                failures: dict[str, GraphlakeClientError] = {}
                for part in ingest.batches(found.part(range(start, start + len(chunk)))):
                    try:
                        ingested = await ingest.ingest_chunk(self, part, progress)
                        done += ingested if ingested is not None else await self._upload_chunk(part.files, progress, gate)
                    except UploadsFailed as failed:  # a file gone since the walk, say: the parts after it still go
                        failures |= failed.failures
                if failures:
                    raise UploadsFailed(failures, len(chunk))
                return done

        # Every batch runs to its end before a failure is reported: what made it stays completed.
        done = await asyncio.gather(*(batch(start) for start in range(0, len(files), BATCH_FILES)),
                                    return_exceptions=True)
        if failed := [d for d in done if isinstance(d, BaseException)]:
            batches_failed = [f for f in failed if isinstance(f, UploadsFailed)]
            if len(batches_failed) == len(failed):  # one account of the whole upload, counted in all its files
                raise UploadsFailed({path: error for f in batches_failed for path, error in f.failures.items()},
                                    len(files))
            raise failed[0]
        return [asset for assets in done for asset in assets]  # type: ignore[union-attr]

    async def _ingestible(self, files: list[tuple[Path, dict[str, Any]]]) -> ingest.Found | None:
        """The files as this machine sees them if the server reads them itself (its roots asked of it
        once per client), else None."""
        if not self.server_ingest or not files:
            return None
        plan = ingest.Plan.of(await self._storage_facts())
        if not plan.takes(files):
            return None
        found = await ingest.find(files)
        return found if plan.covers(found) else None

    async def _upload_chunk(self, files: list[tuple[Path, dict[str, Any]]], progress: Progress | None,
                            gate: asyncio.Semaphore) -> list[dict[str, Any]]:
        # Each file's resume key and size from one stat, all in one thread: each file-system call
        # on this thread waits for the GIL again, behind the threads hashing and copying files (a
        # stat and a resolve per file, three times over, were a fifth of an import's client CPU).
        stats = await to_thread(lambda: [self._stat_key(path, fields) for path, fields in files])
        # Files that could not be read, by position. One gone since it was listed fails alone, coded,
        # as one that cannot be read: its stat here was a bare FileNotFoundError ending the whole upload.
        unread = {i: file_error(files[i][0], seen) for i, seen in enumerate(stats) if isinstance(seen, OSError)}
        keys = [seen[0] if isinstance(seen, tuple) else "" for seen in stats]
        sizes = [seen[1] if isinstance(seen, tuple) else 0 for seen in stats]
        read = [i for i in range(len(files)) if i not in unread]
        resumed = iter(await asyncio.gather(*(self._resumed(session_id)
                                              for session_id in self.resume.get_many([keys[i] for i in read]))))
        sessions: list[dict[str, Any] | None] = [None if i in unread else next(resumed) for i in range(len(files))]
        fresh = [i for i in read if sessions[i] is None]
        if fresh:
            async def upload_input(i: int) -> dict[str, Any]:
                direct = await self._writes_directly(files[i][1].get("mount")) or None
                async with gate:  # hashing reads the files: a few at a time
                    return await self._upload_input(files[i][0], sizes[i], **files[i][1], direct=direct)

            hashed = await asyncio.gather(*(upload_input(i) for i in fresh), return_exceptions=True)
            if other := next((e for e in hashed if isinstance(e, BaseException) and not isinstance(e, OSError)), None):
                raise other
            # A file that cannot be read (no permission) fails alone, as one the store refuses: the
            # others are created, sent and completed, and UploadsFailed names it among theirs.
            unread |= {i: file_error(files[i][0], error) for i, error in zip(fresh, hashed, strict=True)
                       if isinstance(error, OSError)}
            fresh = [i for i in fresh if i not in unread]
            inputs = [upload for upload in hashed if not isinstance(upload, BaseException)]
            # In runs whose part URLs fit in a request, each remembered as it is created: a later run
            # refused leaves the earlier ones to resume.
            for run in within_part_urls([sizes[i] for i in fresh]):
                try:
                    created = (await self.execute(ops.CREATE_UPLOADS, {"inputs": inputs[run.start:run.stop]}))["createUploads"]
                except GraphlakeClientError as error:  # "inputs[7].name: ..." -> which file that is
                    found = re.match(r"inputs\[(\d+)\]", error.field or "")
                    if found and int(found.group(1)) < len(run):
                        raise error.restated(f"{files[fresh[run.start + int(found.group(1))]][0]}: {error}") from None
                    raise
                for i, session in zip(fresh[run.start:run.stop], created, strict=True):
                    sessions[i] = session
                made = list(zip(fresh[run.start:run.stop], created, strict=True))
                self.resume.put_many({keys[i]: None if session["unchanged"] else session for i, session in made},
                                     {keys[i]: files[i][0] for i, _ in made})
        # Filed already with the same content (a directory uploaded again): nothing to send or complete.
        kept = {i: {**session["asset"], "unchanged": True} for i, session in enumerate(sessions)
                if session and session.get("unchanged")}
        for i in kept:
            if progress:
                progress(sizes[i])
        rest = [i for i in range(len(files)) if i not in kept and i not in unread]
        opened = [session for i in rest if (session := sessions[i]) is not None]  # every one by now
        failures = {str(files[i][0]): error for i, error in unread.items()}
        try:
            done = iter(await self._send_and_complete([(*files[i], keys[i], sizes[i]) for i in rest], opened,
                                                      progress, gate) if rest else ())
        except UploadsFailed as failed:
            raise UploadsFailed({**failed.failures, **failures}, len(files)) from None
        if failures:
            raise UploadsFailed(failures, len(files))
        return [kept[i] if i in kept else next(done) for i in range(len(files))]

    async def _send_and_complete(self, files: list[tuple[Path, dict[str, Any], str, int]],
                                 sessions: list[dict[str, Any]], progress: Progress | None,
                                 gate: asyncio.Semaphore) -> list[dict[str, Any]]:
        """`files`: each with its createUpload fields, resume key and size."""
        async def send(path: Path, size: int, session: dict[str, Any], declared: bool) -> str | None:
            async with gate:
                return await self._deliver(session, path, size, progress, declared)

        sent = await asyncio.gather(*(send(path, size, session, bool(fields.get("sha256")))
                                      for (path, fields, _, size), session in zip(files, sessions, strict=True)),
                                    return_exceptions=True)
        ready = [(path, key, session, digest) for (path, _, key, _), session, digest in zip(files, sessions, sent, strict=True)
                 if not isinstance(digest, BaseException)]
        done = (await self._repeatable(ops.COMPLETE_UPLOADS, {"ids": [s["id"] for _, _, s, _ in ready],
                                                              "sha256s": [digest for *_, digest in ready]}))["completeUploads"] \
            if ready else {"assets": [], "failures": []}
        assets = {a["id"]: a for a in done["assets"]}
        failed = {f["uploadId"]: f for f in done["failures"]}
        # CONFLICT: finished by an earlier attempt, or still being finished; _complete finds out which.
        conflicts = [(session["id"], digest) for _, _, session, digest in ready
                     if failed.get(session["id"], {}).get("code") == "CONFLICT"]
        settled = await asyncio.gather(*(self._complete(*c, look_first=True) for c in conflicts), return_exceptions=True)
        for (session_id, _), outcome in zip(conflicts, settled, strict=True):
            if isinstance(outcome, GraphlakeClientError):
                failed[session_id] = {"message": str(outcome), "code": outcome.code, "field": outcome.field}
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                assets[outcome["id"]] = outcome
                del failed[session_id]
        self.resume.put_many({key: None for _, key, session, _ in ready if session["id"] not in failed})
        # By the path as given, not its name alone: a/x.csv and b/x.csv were both "x.csv".
        problems = {str(path): sending_error(path, error) for (path, *_), error in zip(files, sent, strict=True)
                    if isinstance(error, BaseException)}
        problems |= {str(path): GraphlakeClientError(failed[s["id"]]["message"], failed[s["id"]].get("code"),
                                                     failed[s["id"]].get("field"))
                     for path, _, s, _ in ready if s["id"] in failed}
        if problems:
            raise UploadsFailed(problems, len(files))
        return [assets[session["asset"]["id"]] for _, _, session, _ in ready]

    async def find_collection(self, name: str) -> str | None:
        """The id of the collection named `name`; None if there is none."""
        after = None
        while True:  # the name is matched as a substring: the exact one may come after many others
            page = (await self.execute(ops.FIND_COLLECTION, {"name": name, "after": after}))["collections"]
            found = next((edge["node"]["id"] for edge in page["edges"] if edge["node"]["name"] == name), None)
            if found or not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    async def collection_id(self, name: str) -> str:
        """The id of the collection named `name`, created if it does not exist."""
        found = await self.find_collection(name)
        return found or (await self.execute(ops.CREATE_COLLECTION, {"name": name}))["createCollection"]["id"]

    async def upload_paths(self, paths: Iterable[Path], *, collection: str | None = None, as_archive: bool = False,
                           ignore: Iterable[str] = (), manifest: dict[str, dict[str, Any]] | None = None,
                           progress: Callable[[int, int], None] | None = None,
                           follow_symlinks: bool = False, owner: Source | None = None,
                           data_timestamp: datetime | None = None) -> list[dict[str, Any]]:
        """Upload files and directories. A directory goes file by file keeping relative paths
        (hierarchical mode), or as one zip with `as_archive`. `ignore` patterns and the tree's
        .gitignore files are honoured, and symbolic links skipped unless `follow_symlinks`;
        `manifest` gives per-file description, metadata and labels (an entry naming no file sent
        is an error: a typo would otherwise drop its labels silently). `owner` and `data_timestamp`
        (aware) go to every file, as upload_file's."""
        taken = wire_time(data_timestamp, "data_timestamp")  # before a collection or an archive is made
        manifest = manifest or {}
        # First what goes, and whether the manifest fits it: nothing is made (a collection, a zip) before.
        walked: list[tuple[Path, list[str] | None]] = []  # a directory with its files, or a file
        for n, root in enumerate(paths):
            if root.is_dir():
                walked.append((root, walk(root, ignore, follow_symlinks=follow_symlinks)))
            elif root.is_file():
                walked.append((root, None))
            else:
                raise GraphlakeClientError(f"{root}: no such file or directory", "BAD_USER_INPUT", f"paths[{n}]")
        sent = {name for root, files in walked
                for name in ([root.name] if files is None else [f"{root.resolve().name}.zip"] if as_archive else files)}
        if unknown := sorted(set(manifest) - sent):
            raise GraphlakeClientError(f"the manifest names files this upload does not send: {', '.join(unknown[:10])}"
                                       + (" ..." if len(unknown) > 10 else ""), "BAD_USER_INPUT", "manifest")
        jobs: list[tuple[Path, str]] = []  # file, its path relative to the upload root
        archives: list[Path] = []
        try:
            for root, files in walked:
                if files is None:
                    jobs.append((root, root.name))
                elif as_archive:  # made before the collection: a file it cannot read refuses it first
                    archive = await to_thread(make_archive, root, files)
                    archives.append(archive)
                    jobs.append((archive, f"{root.resolve().name}.zip"))
                else:
                    jobs += [(root / rel, rel) for rel in files]
            collection_id = await self.collection_id(collection) if collection else None
            return await self._upload_jobs(jobs, archives, collection_id, manifest, progress,
                                           {"owner": owner, "dataTimestamp": taken})
        finally:
            for archive in archives:
                archive.unlink(missing_ok=True)

    async def _upload_jobs(self, jobs: list[tuple[Path, str]], archives: list[Path], collection_id: str | None,
                           manifest: dict[str, dict[str, Any]],
                           progress: Callable[[int, int], None] | None, shared: dict[str, Any]) -> list[dict[str, Any]]:
        files = []
        for path, relative in jobs:
            details = manifest.get(relative, {})
            files.append((path, {
                # In a collection the item keeps the path; without one the name must, or `a/x.csv` and
                # `b/x.csv` came back as two assets named x.csv and nothing said which was which.
                "name": Path(relative).name if collection_id else relative, "collectionId": collection_id,
                "path": relative if collection_id else None,
                "description": details.get("description"), "metadata": details.get("metadata"),
                "labels": details.get("labels"), "mediaType": "application/zip" if path in archives else None,
                **shared,
            }))
        # What goes: a file gone, or one whose name the server refuses (upload_batch), counts for nothing.
        total = sum(found.st_size for path, fields in files
                    if not unnamable(path, fields) and (found := ingest.stat_or_none(path)))
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        return await self.upload_batch(files, progress=advance)
