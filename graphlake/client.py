"""A Python client for Graphlake: GraphQL calls, file and directory uploads, downloads.

    async with Client("http://127.0.0.1:8000", token) as lake:
        asset = await lake.upload_file(Path("scan.tif"), collection="scans")
        await lake.download(asset["id"], Path("copy.tif"))

Uploads never send bytes through GraphQL: the client asks for an upload session, PUTs the file
(or its parts, in parallel) to the signed URLs, and completes. Each PUT is retried with
exponential backoff, and an interrupted upload resumes from the parts already stored (the
session is remembered in a small state file next to the user's cache). A completion whose
answer is lost (a timeout, a proxy giving up while the server reads a big object back) is asked
again, so an upload the server finished is never reported failed or sent twice. When the client
shares a local mount's filesystem with the server (the same machine, a cluster's shared disk),
it writes the file into the mount itself instead: a kernel copy, no HTTP (storage/local.py).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import random
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pathspec

from graphlake_client.direct import file_sha256, shares_directory, write_in_place

CHUNK = 1024 * 1024
Progress = Callable[[int], None]  # called with the bytes just sent


class GraphlakeClientError(Exception):
    """An error the server answered with; `code` and `field` come from its extensions."""

    def __init__(self, message: str, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


_SESSION_FIELDS = "id status url headers partSizeBytes parts { partNumber url uploaded } directPath asset { id }"
_CREATE_UPLOAD = f"""mutation ($input: CreateUploadInput!) {{ createUpload(input: $input) {{ {_SESSION_FIELDS} }} }}"""
_SESSION = f"""query ($id: ID!) {{ uploadSession(id: $id) {{ {_SESSION_FIELDS} }} }}"""
_ASSET_FIELDS = "id name status sizeBytes sha256 mediaType"
_COMPLETE = f"""mutation ($id: ID!, $sha256: String) {{
  completeUpload(input: {{id: $id, sha256: $sha256}}) {{ {_ASSET_FIELDS} }}
}}"""
_SETTLED = f"""query ($id: ID!) {{ uploadSession(id: $id) {{ status expiresAt asset {{ {_ASSET_FIELDS} }} }} }}"""
_CREATE_UPLOADS = f"""mutation ($inputs: [CreateUploadInput!]!) {{ createUploads(inputs: $inputs) {{ {_SESSION_FIELDS} }} }}"""
_MOUNTS = """{ mounts { name isDefault localRoot localId } }"""
_COMPLETE_UPLOADS = f"""mutation ($ids: [ID!]!, $sha256s: [String]) {{
  completeUploads(ids: $ids, sha256s: $sha256s) {{ assets {{ {_ASSET_FIELDS} }} failures {{ uploadId code message }} }}
}}"""
# What a gateway answers when it gave up waiting for the server, or could not reach it: the
# request may have run all the same.
_GATEWAY_ERRORS = {502, 503, 504}
BATCH_FILES = 100  # files per createUploads / completeUploads: a directory of small files is not 3 round trips each
# From this size on a file is hashed while it uploads, its digest given at completion: hashing it
# first would hold up its first byte by seconds. Smaller ones declare it up front, which lets S3
# check a single PUT itself instead of the server reading the object back.
LATE_HASH_BYTES = 64 * 1024 * 1024
_FIND_COLLECTION = """query ($name: String!) { collections(nameContains: $name, first: 100) { edges { node { id name } } } }"""
_CREATE_COLLECTION = """mutation ($name: String!) { createCollection(input: {name: $name}) { id name } }"""
_DOWNLOAD = """query ($id: ID!) { asset(id: $id) { id name downloadUrl } }"""
_DOWNLOAD_BY_ALIAS = """query ($alias: String!) { assetByAlias(alias: $alias) { id name downloadUrl } }"""


@dataclass
class ResumeState:
    """Open upload sessions by file (path, size, mtime), so a rerun resumes instead of restarting."""

    path: Path = field(default_factory=lambda: Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                       / "graphlake" / "uploads.json")

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @staticmethod
    def key(server: str, file: Path) -> str:
        stat = file.stat()
        return f"{server}|{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"

    def get(self, key: str) -> str | None:
        return self._load().get(key)

    def put(self, key: str, session_id: str | None) -> None:
        state = self._load()
        if session_id is None:
            state.pop(key, None)
        else:
            state[key] = session_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(state))


class Client:
    backoff_seconds = 0.5  # first retry delay; doubles each attempt (with jitter), at most 30 s

    def __init__(self, url: str, token: str | None, *, concurrency: int = 4, retries: int = 5,
                 resume: ResumeState | None = None, timeout: float = 300,
                 storage_transport: httpx.AsyncBaseTransport | None = None, direct_writes: bool = True,
                 graphql_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.concurrency = concurrency
        self.retries = retries
        self.resume = resume or ResumeState()
        self.direct_writes = direct_writes  # where a mount's filesystem is shared; False: always HTTP
        self._direct: asyncio.Future[dict[str | None, bool]] | None = None  # mount name (None: default) -> shared here
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=graphql_transport)
        # Signed URLs carry their own authorization: never send our token to a store.
        self.storage_http = httpx.AsyncClient(timeout=timeout, transport=storage_transport)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.storage_http.aclose()

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}})
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if body.get("errors"):
            error = body["errors"][0]
            extensions = error.get("extensions", {})
            raise GraphlakeClientError(error["message"], extensions.get("code"), extensions.get("field"))
        response.raise_for_status()
        return body["data"]

    async def _repeatable(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """`execute` for a request that is safe to send twice, sent again (up to `retries` times,
        with backoff) when its answer is lost on the way: a timeout, a broken connection, a
        gateway's 502/503/504. The server may have run it all the same."""
        attempt = 0
        while True:
            try:
                return await self.execute(query, variables)
            except httpx.HTTPStatusError as error:
                if error.response.status_code not in _GATEWAY_ERRORS or attempt == self.retries:
                    raise
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            await asyncio.sleep(self._pause(attempt))
            attempt += 1

    def _pause(self, attempt: int) -> float:
        """The wait before retry number `attempt` + 1: exponential from backoff_seconds, jittered, at most 30 s."""
        return min(30.0, self.backoff_seconds * 2**attempt) * (0.5 + random.random())

    # --- uploads
    async def _writes_directly(self, mount: str | None) -> bool:
        """Whether this machine sees the local mount's directory itself: its marker file holds the
        id the server reports. Asked of the server once per client, however many files ask at once."""
        if not self.direct_writes:
            return False
        if self._direct is None:
            self._direct = asyncio.ensure_future(self._shared_mounts())
        return (await self._direct).get(mount, False)

    async def _shared_mounts(self) -> dict[str | None, bool]:
        shared: dict[str | None, bool] = {}
        for found in (await self.execute(_MOUNTS))["mounts"]:
            here = shares_directory(found["localRoot"], found["localId"])
            shared[found["name"]] = here
            if found["isDefault"]:
                shared[None] = here
        return shared

    async def _put(self, url: str, path: Path, offset: int, size: int, headers: dict[str, str],
                   progress: Progress | None) -> None:
        """PUT one byte range of `path`, retried with exponential backoff and jitter."""
        for attempt in range(self.retries + 1):
            try:
                with path.open("rb") as source:
                    source.seek(offset)
                    body = source.read(size)
                response = await self.storage_http.put(url, content=body, headers=headers)
                if response.status_code < 500:
                    response.raise_for_status()
                    if progress:
                        progress(size)
                    return
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            if attempt < self.retries:
                await asyncio.sleep(self._pause(attempt))
        raise GraphlakeClientError(f"the store kept failing the upload of {path.name} ({response.status_code})")

    async def _deliver(self, session: dict[str, Any], path: Path, progress: Progress | None) -> str | None:
        """Send the file where the session says (nowhere: an earlier run completed it). A file of
        LATE_HASH_BYTES or more is hashed meanwhile: its digest is returned, for the completion
        (None: declared at creation)."""
        if session["status"] == "COMPLETED":
            if progress:
                progress(path.stat().st_size)
            return None
        if path.stat().st_size < LATE_HASH_BYTES:
            await self._send(session, path, progress)
            return None
        digest, _ = await asyncio.gather(asyncio.to_thread(file_sha256, path), self._send(session, path, progress))
        return digest

    async def _send(self, session: dict[str, Any], path: Path, progress: Progress | None) -> None:
        if session.get("directPath"):
            await asyncio.to_thread(write_in_place, path, Path(session["directPath"]))
            if progress:
                progress(path.stat().st_size)
            return
        if session["url"]:
            await self._put(session["url"], path, 0, path.stat().st_size, session["headers"] or {}, progress)
            return
        part_size = int(session["partSizeBytes"])
        total = path.stat().st_size
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

    async def _resumed(self, path: Path) -> dict[str, Any] | None:
        """The session an earlier, interrupted run left for this file, if any: still open, or
        completed by a run that never heard the answer (its asset is then the upload)."""
        session_id = self.resume.get(ResumeState.key(self.url, path))
        if session_id is None:
            return None
        try:
            found = (await self.execute(_SESSION, {"id": session_id}))["uploadSession"]
        except GraphlakeClientError:
            return None
        return found if found and found["status"] in ("OPEN", "COMPLETED") else None

    async def _complete(self, session_id: str, sha256: str | None, *, look_first: bool = False) -> dict[str, Any]:
        """Complete an upload and return its asset, whatever it takes to learn the outcome.
        Completing is safe to repeat: a lost answer is asked again (`_repeatable`); CONFLICT means
        an earlier attempt finished it (its asset is the answer) or a request is still at it
        (reading a big object back can outlast any timeout), which is waited for. A request that
        died leaves a claim that lapses within half a minute (CLAIM_SECONDS in
        resolvers/uploads/service.py); the next attempt after that completes the upload itself.
        `look_first`: CONFLICT is already known (a batch's failure, a session found completed),
        so the session is looked at before completing is asked again."""
        attempt = 0
        while True:
            if not look_first:
                try:
                    return (await self._repeatable(_COMPLETE, {"id": session_id, "sha256": sha256}))["completeUpload"]
                except GraphlakeClientError as error:
                    if error.code != "CONFLICT":
                        raise
            asset = await self._settled(session_id)
            if asset is not None:
                return asset
            await asyncio.sleep(self._pause(attempt))
            attempt, look_first = attempt + 1, False

    async def _settled(self, session_id: str) -> dict[str, Any] | None:
        """The asset of a completed upload; None while it is open (being completed); an error
        once it cannot complete any more (aborted, expired)."""
        session = (await self._repeatable(_SETTLED, {"id": session_id}))["uploadSession"]
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
    async def _upload_input(file: Path, **fields: Any) -> dict[str, Any]:
        """createUpload's input for a file: its size, media type, SHA-256 (unless it is big enough
        to be hashed while it uploads, see `_deliver`), and the given fields."""
        size = file.stat().st_size
        sha256 = await asyncio.to_thread(file_sha256, file) if size < LATE_HASH_BYTES else None
        fields = {"name": fields.pop("name", None) or file.name, "sizeBytes": size, "sha256": sha256, **fields}
        fields["mediaType"] = fields.get("mediaType") or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return {k: v for k, v in fields.items() if v is not None}

    async def upload_file(self, path: Path, *, name: str | None = None, media_type: str | None = None,
                          collection_id: str | None = None, collection_path: str | None = None,
                          description: str | None = None, metadata: dict[str, Any] | None = None,
                          labels: list[str] | None = None, mount: str | None = None,
                          progress: Progress | None = None) -> dict[str, Any]:
        """Upload one file, resuming an earlier interrupted upload of the same file if there is one."""
        resume_key = ResumeState.key(self.url, path)
        session = await self._resumed(path)
        if session is None:
            upload = await self._upload_input(path, name=name, mediaType=media_type, collectionId=collection_id,
                                              path=collection_path, description=description, metadata=metadata,
                                              labels=labels, mount=mount,
                                              direct=await self._writes_directly(mount) or None)
            session = (await self.execute(_CREATE_UPLOAD, {"input": upload}))["createUpload"]
            self.resume.put(resume_key, session["id"])
        sha256 = await self._deliver(session, path, progress)
        asset = await self._complete(session["id"], sha256, look_first=session["status"] == "COMPLETED")
        self.resume.put(resume_key, None)
        return asset

    async def upload_batch(self, files: list[tuple[Path, dict[str, Any]]], progress: Progress | None = None) -> list[dict[str, Any]]:
        """Upload several files with one createUploads and one completeUploads per BATCH_FILES,
        their bytes `concurrency` files at a time. `files` pairs each path with createUpload
        fields (name, collectionId, path, ...). Files an interrupted run left open resume. Raises,
        after completing every file that made it, if any did not."""
        assets: list[dict[str, Any]] = []
        for start in range(0, len(files), BATCH_FILES):
            assets += await self._upload_chunk(files[start:start + BATCH_FILES], progress)
        return assets

    async def _upload_chunk(self, files: list[tuple[Path, dict[str, Any]]], progress: Progress | None) -> list[dict[str, Any]]:
        sessions: list[dict[str, Any] | None] = list(await asyncio.gather(*(self._resumed(path) for path, _ in files)))
        fresh = [i for i, session in enumerate(sessions) if session is None]
        if fresh:
            gate = asyncio.Semaphore(self.concurrency)

            async def upload_input(i: int) -> dict[str, Any]:
                direct = await self._writes_directly(files[i][1].get("mount")) or None
                async with gate:  # hashing reads the files: a few at a time
                    return await self._upload_input(files[i][0], **files[i][1], direct=direct)

            inputs = await asyncio.gather(*(upload_input(i) for i in fresh))
            try:
                created = (await self.execute(_CREATE_UPLOADS, {"inputs": inputs}))["createUploads"]
            except GraphlakeClientError as error:  # "inputs[7].name: ..." -> which file that is
                found = re.match(r"inputs\[(\d+)\]", error.field or "")
                if found and int(found.group(1)) < len(fresh):
                    raise GraphlakeClientError(f"{files[fresh[int(found.group(1))]][0]}: {error}", error.code,
                                               error.field) from None
                raise
            for i, session in zip(fresh, created, strict=True):
                sessions[i] = session
                self.resume.put(ResumeState.key(self.url, files[i][0]), session["id"])
        gate = asyncio.Semaphore(self.concurrency)

        async def send(path: Path, session: dict[str, Any]) -> str | None:
            async with gate:
                return await self._deliver(session, path, progress)

        sent = await asyncio.gather(*(send(path, session) for (path, _), session in zip(files, sessions, strict=True)),
                                    return_exceptions=True)
        ready = [(path, session, digest) for (path, _), session, digest in zip(files, sessions, sent, strict=True)
                 if not isinstance(digest, BaseException)]
        done = (await self._repeatable(_COMPLETE_UPLOADS, {"ids": [s["id"] for _, s, _ in ready],
                                                           "sha256s": [digest for _, _, digest in ready]}))["completeUploads"] \
            if ready else {"assets": [], "failures": []}
        assets = {a["id"]: a for a in done["assets"]}
        failed = {f["uploadId"]: f for f in done["failures"]}
        # CONFLICT: finished by an earlier attempt, or still being finished; _complete finds out which.
        conflicts = [(session["id"], digest) for _, session, digest in ready
                     if failed.get(session["id"], {}).get("code") == "CONFLICT"]
        settled = await asyncio.gather(*(self._complete(*c, look_first=True) for c in conflicts), return_exceptions=True)
        for (session_id, _), outcome in zip(conflicts, settled, strict=True):
            if isinstance(outcome, GraphlakeClientError):
                failed[session_id] = {"message": str(outcome)}
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                assets[outcome["id"]] = outcome
                del failed[session_id]
        for path, session, _ in ready:
            if session["id"] not in failed:
                self.resume.put(ResumeState.key(self.url, path), None)
        problems = [f"{path.name}: {error}" for (path, _), error in zip(files, sent, strict=True)
                    if isinstance(error, BaseException)]
        problems += [f"{path.name}: {failed[s['id']]['message']}" for path, s, _ in ready if s["id"] in failed]
        if problems:
            raise GraphlakeClientError(f"{len(problems)} of {len(files)} files did not upload: " + "; ".join(problems[:5]))
        return [assets[session["asset"]["id"]] for _, session, _ in ready]

    async def collection_id(self, name: str) -> str:
        """The id of the collection named `name`, created if it does not exist."""
        edges = (await self.execute(_FIND_COLLECTION, {"name": name}))["collections"]["edges"]
        for edge in edges:
            if edge["node"]["name"] == name:
                return edge["node"]["id"]
        return (await self.execute(_CREATE_COLLECTION, {"name": name}))["createCollection"]["id"]

    async def upload_paths(self, paths: Iterable[Path], *, collection: str | None = None, as_archive: bool = False,
                           ignore: Iterable[str] = (), manifest: dict[str, dict[str, Any]] | None = None,
                           progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
        """Upload files and directories. A directory goes file by file keeping relative paths
        (hierarchical mode), or as one zip with `as_archive`. `ignore` patterns and the directory's
        .gitignore are honoured; `manifest` gives per-file description, metadata and labels."""
        collection_id = await self.collection_id(collection) if collection else None
        manifest = manifest or {}
        jobs: list[tuple[Path, str]] = []  # file, its path relative to the upload root
        archives: list[Path] = []
        for root in paths:
            if root.is_dir():
                files = list(walk(root, ignore))
                if as_archive:
                    archive = await asyncio.to_thread(make_archive, root, files)
                    archives.append(archive)
                    jobs.append((archive, f"{root.resolve().name}.zip"))
                else:
                    jobs += [(root / rel, rel) for rel in files]
            elif root.is_file():
                jobs.append((root, root.name))
            else:
                raise GraphlakeClientError(f"{root}: no such file or directory")
        total = sum(path.stat().st_size for path, _ in jobs)
        sent = 0

        def advance(n: int) -> None:
            nonlocal sent
            sent += n
            if progress:
                progress(sent, total)

        try:
            files = []
            for path, relative in jobs:
                details = manifest.get(relative, {})
                files.append((path, {
                    "name": Path(relative).name, "collectionId": collection_id, "path": relative if collection_id else None,
                    "description": details.get("description"), "metadata": details.get("metadata"),
                    "labels": details.get("labels"), "mediaType": "application/zip" if path in archives else None,
                }))
            return await self.upload_batch(files, progress=advance)
        finally:
            for archive in archives:
                archive.unlink(missing_ok=True)

    # --- events
    async def log_event(self, event_type: str, message: str | None = None, *, level: str = "INFO",
                        data: Any = None, **fields: Any) -> str:
        """Log one event; `fields` are EventInput fields (source, alert, traceId, ...). Returns its ID."""
        return (await self.log_events([{"eventType": event_type, "message": message, "level": level, "data": data, **fields}]))[0]

    async def log_events(self, events: list[dict[str, Any]]) -> list[str]:
        """Log a batch of EventInput dicts with one request and one bulk write. Returns their IDs."""
        query = "mutation ($inputs: [EventInput!]!) { logEvents(inputs: $inputs) { ids } }"
        inputs = [{k: v for k, v in e.items() if v is not None} for e in events]
        return (await self.execute(query, {"inputs": inputs}))["logEvents"]["ids"]

    # --- downloads
    async def download(self, asset: str, dest: Path | None = None) -> Path:
        """Save an asset (by ID or alias) to `dest` (a file, or a directory to keep its name)."""
        try:
            found = (await self.execute(_DOWNLOAD, {"id": asset}))["asset"]
        except GraphlakeClientError as error:
            if error.code != "BAD_USER_INPUT":
                raise
            found = None  # not an ID: try it as an alias
        found = found or (await self.execute(_DOWNLOAD_BY_ALIAS, {"alias": asset}))["assetByAlias"]
        if found is None:
            raise GraphlakeClientError(f"no asset with ID or alias {asset!r}", "NOT_FOUND")
        if not found["downloadUrl"]:
            raise GraphlakeClientError(f"asset {found['name']!r} has no file to download (a value or text?)")
        target = dest or Path(found["name"])
        if target.is_dir():
            target = target / found["name"]
        fd, temp = tempfile.mkstemp(prefix=".download-", dir=target.parent if str(target.parent) else ".")
        try:
            with os.fdopen(fd, "wb") as out:
                async with self.storage_http.stream("GET", found["downloadUrl"]) as response:
                    response.raise_for_status()
                    async for chunk in response.aiter_bytes(CHUNK):
                        out.write(chunk)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target


def walk(root: Path, ignore: Iterable[str] = ()) -> list[str]:
    """Files under `root` as relative POSIX paths, minus `ignore` patterns and root's .gitignore."""
    patterns = list(ignore)
    gitignore = root / ".gitignore"
    if gitignore.is_file():
        patterns += gitignore.read_text().splitlines()
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not spec.match_file(relative) and ".git" not in Path(relative).parts:
            files.append(relative)
    return files


def make_archive(root: Path, files: list[str]) -> Path:
    fd, temp = tempfile.mkstemp(prefix=f"{root.resolve().name}-", suffix=".zip")
    os.close(fd)
    with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            archive.write(root / relative, relative)
    return Path(temp)
