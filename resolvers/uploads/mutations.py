"""Uploading files and registering external data (CONTRIBUTOR)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.assets.types import Asset
from resolvers.common import encode_metadata
from resolvers.context import Info, ServerSettings
from resolvers.permissions import CanWrite
from resolvers.uploads.inputs import CompleteUploadInput, CreateUploadInput, IngestFileInput, RegisterExternalInput
from resolvers.uploads.types import (
    CompleteUploadsPayload,
    IngestedFile,
    RegisterExternalPayload,
    UploadFailure,
    UploadSession,
)
from services.errors import GraphlakeError
from services.node_ids import NodeType, decode_object_id
from services.uploads import completion, external, ingest, sessions, verification
from services.uploads.finishing import Unfiled
from storage.concurrency import bounded_gather
from storage.local import MARKER, LocalStore
from storage.ownership import OWNER_FILE
from storage.protocol import LAKE_FOLDERS


def _request(input: CreateUploadInput | IngestFileInput, where: str, settings: ServerSettings) -> sessions.UploadRequest:
    """The service's request from one input; `where` prefixes field names in errors (batches). An
    ingest's name and media type are the server's to find (services/uploads/ingest.py)."""
    upload = isinstance(input, CreateUploadInput)
    return sessions.UploadRequest(
        name=input.name if upload else "", size_bytes=input.size_bytes,
        media_type=input.media_type if upload else "",
        sha256=input.sha256.lower() if input.sha256 else None, mount=input.mount if upload else None,
        description=input.description,
        labels=input.labels or [], metadata=encode_metadata(input.metadata, settings, field=f"{where}metadata"),
        owner=input.owner.to_value() if input.owner else None, data_timestamp=input.data_timestamp,
        collection_id=decode_object_id(input.collection_id, NodeType.COLLECTION, field=f"{where}collectionId") if input.collection_id else None,
        path=input.path, direct=upload and input.direct,
    )


@strawberry.type
class UploadMutations:
    @strawberry.mutation(permission_classes=[CanWrite], description="Start an upload: a PENDING FILE asset and signed URL(s) to PUT its bytes to.")
    async def create_upload(
        self, info: Info, input: Annotated[CreateUploadInput, strawberry.argument(description="The file to upload.")],
    ) -> UploadSession:
        settings, part_urls = info.context.settings, info.context.loaders.part_urls
        started = await sessions.create_upload(_request(input, "", settings), info.context.stores, settings,
                                              info.context.actor, part_urls=part_urls)
        info.context.loaders.known([started.asset])
        return UploadSession.from_signed(await sessions.sign_session(started.session, info.context.stores, part_urls,
                                                                     "sizeBytes"),
                                         unchanged=started.unchanged)

    @strawberry.mutation(permission_classes=[CanWrite], description="Start several uploads at once (a directory of small files): "
                                                                     "all are checked first, then stored together; sessions in the order given.")
    async def create_uploads(
        self, info: Info,
        inputs: Annotated[list[CreateUploadInput], strawberry.argument(description=(
            "The files: 1 to GRAPHLAKE_MAX_BATCH_ITEMS (10,000 by default), their parts 10,000 at most in all (a file "
            "of S bytes has at most ceil(S / 8 MiB)); past that, BAD_USER_INPUT on the `sizeBytes` of the first that "
            "does not fit, and nothing is started."))],
    ) -> list[UploadSession]:
        stores, settings, part_urls = info.context.stores, info.context.settings, info.context.loaders.part_urls
        started = await sessions.create_uploads([_request(input, f"inputs[{i}].", settings) for i, input in enumerate(inputs)],
                                               stores, settings, info.context.actor, part_urls=part_urls)
        info.context.loaders.known([s.asset for s in started])
        # Their parts fit (create_uploads checked): the signing takes them, giving the loop turns.
        signed = await bounded_gather([lambda i=i, s=s: sessions.sign_session(s.session, stores, part_urls,
                                                                               f"inputs[{i}].sizeBytes")
                                       for i, s in enumerate(started)])
        return [UploadSession.from_signed(s, unchanged=st.unchanged) for s, st in zip(signed, started, strict=True)]

    @strawberry.mutation(permission_classes=[CanWrite], description="Finish an upload: the stored size (and SHA-256 if declared, here or in createUpload) must match; the asset turns ACTIVE, or FAILED with the difference named.")
    async def complete_upload(
        self, info: Info, input: Annotated[CompleteUploadInput, strawberry.argument(description="The upload to finish.")],
    ) -> Asset:
        session_id = decode_object_id(input.id, NodeType.UPLOAD_SESSION)
        doc = await completion.complete_upload(session_id, info.context.stores, info.context.state.feed, info.context.actor,
                                            info.context.settings.max_batch_items,
                                            {session_id: verification.check_sha256(input.sha256, "sha256")} if input.sha256 else None)
        state = info.context.state
        if state.metrics is not None:
            state.metrics.count_uploads([doc])
        state.thumbnailer.prepare([doc], state.stores, state.background)
        return Asset.from_document(doc)

    @strawberry.mutation(permission_classes=[CanWrite], description="Finish several uploads, each on its own as completeUpload does: "
                                                                     "the assets that turned ACTIVE, and why the others did not.")
    async def complete_uploads(
        self, info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description=(
            "The upload sessions, at most GRAPHLAKE_MAX_BATCH_ITEMS (10,000 by default)."))],
        sha256s: Annotated[list[str | None] | None, strawberry.argument(description=(
            "Hex SHA-256 digests in the order of `ids`, for uploads created without one (null where createUploads "
            "declared it), as completeUpload's `sha256`."))] = None,
    ) -> CompleteUploadsPayload:
        session_ids = [decode_object_id(id, NodeType.UPLOAD_SESSION, field=f"ids[{i}]") for i, id in enumerate(ids)]
        late = verification.late_digests(session_ids, sha256s)
        outcomes = await completion.complete_uploads(session_ids, info.context.stores, info.context.state.feed,
                                                  info.context.actor, info.context.settings.max_batch_items,
                                                  late_sha256=late)
        state = info.context.state
        # An upload its collection could not take completed all the same: its asset is listed and
        # counted, and its failure says why it is in no collection.
        completed = [o.asset if isinstance(o, Unfiled) else o for o in outcomes if not isinstance(o, GraphlakeError)]
        errors = [(id, o.error if isinstance(o, Unfiled) else o) for id, o in zip(ids, outcomes, strict=True)
                  if isinstance(o, GraphlakeError | Unfiled)]
        if state.metrics is not None:
            state.metrics.count_uploads(completed)
        state.thumbnailer.prepare(completed, state.stores, state.background)
        return CompleteUploadsPayload(
            assets=[Asset.from_document(a) for a in completed],
            failures=[UploadFailure(upload_id=id, code=e.extensions["code"], message=str(e), field=e.extensions.get("field"))
                      for id, e in errors],
        )

    @strawberry.mutation(permission_classes=[CanWrite], description=(
        "Copy files the server reads itself (under GRAPHLAKE_INGEST_ROOTS, see `ingestRoots`) into a local mount: "
        "each is hashed as it is copied and filed as an ACTIVE asset, with no upload session or signed URL. All "
        "are checked before any is copied; if one copy fails, none is kept. Results in the order given."))
    async def ingest_files(
        self, info: Info,
        inputs: Annotated[list[IngestFileInput], strawberry.argument(description=(
            "The files: 1 to GRAPHLAKE_MAX_BATCH_ITEMS (10,000 by default)."))],
        mount: Annotated[str | None, strawberry.argument(description="A local mount; default: the server's default mount.")] = None,
    ) -> list[IngestedFile]:
        settings = info.context.settings
        requests = [ingest.IngestRequest(source=input.source, upload=_request(input, f"inputs[{i}].", settings),
                                         modified_ns=input.modified_ns, name=input.name, media_type=input.media_type)
                    for i, input in enumerate(inputs)]
        # Never ingested, whatever the roots say: the data dir (the embedded database, the server's
        # secrets), the backups (every document, token hashes too) and the lake's own places in its
        # local mounts (others' unfinished uploads, which no reader may read; a stored file is an
        # asset already). The rest of a mount (a bundle put there, say) is the users'.
        private = [settings.data_dir, settings.backups,
                   *(store.root / place for store in info.context.stores.values() if isinstance(store, LocalStore)
                     for place in (*(folder.rstrip("/") for folder in LAKE_FOLDERS), ".multipart", MARKER, OWNER_FILE))]
        done = await ingest.ingest_files(requests, settings.ingest_roots, mount, info.context.stores, settings,
                                         info.context.state.feed, info.context.actor, private=private)
        fresh = [d.asset for d in done if not d.unchanged]
        info.context.loaders.known([d.asset for d in done])
        state = info.context.state
        if state.metrics is not None:
            state.metrics.count_uploads(fresh)
        state.thumbnailer.prepare(fresh, state.stores, state.background)
        return [IngestedFile(asset=Asset.from_document(d.asset), unchanged=d.unchanged) for d in done]

    @strawberry.mutation(permission_classes=[CanWrite], description="Give up an upload: its parts and object are removed and its asset turns FAILED.")
    async def abort_upload(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The upload session to give up.")],
    ) -> UploadSession:
        session = await completion.abort_upload(decode_object_id(id, NodeType.UPLOAD_SESSION), info.context.stores,
                                             info.context.state.feed)
        return UploadSession.from_signed(await sessions.sign_session(session, info.context.stores,
                                                                     info.context.loaders.part_urls))

    @strawberry.mutation(permission_classes=[CanWrite], description="Register objects that already exist (an S3 prefix, or an http(s) URL) as EXTERNAL assets, without copying them.")
    async def register_external(
        self, info: Info,
        input: Annotated[RegisterExternalInput, strawberry.argument(description="Where the objects are, and how to file them.")],
    ) -> RegisterExternalPayload:
        registered = await external.register_external(
            stores=info.context.stores, mount=input.mount, bucket=input.bucket, prefix=input.prefix, url=input.url,
            name=input.name, labels=input.labels or [],
            metadata=encode_metadata(input.metadata, info.context.settings, field="metadata"),
            collection_id=decode_object_id(input.collection_id, NodeType.COLLECTION, field="collectionId") if input.collection_id else None,
            actor=info.context.actor, max_items=info.context.settings.max_batch_items,
            owner=input.owner.to_value() if input.owner else None, data_timestamp=input.data_timestamp,
        )
        most = info.context.settings.max_page_size
        return RegisterExternalPayload(count=len(registered.new), assets=[Asset.from_document(a) for a in registered.new[:most]],
                                       unchanged_count=len(registered.unchanged),
                                       unchanged=[Asset.from_document(a) for a in registered.unchanged[:most]])
