"""The permission matrix: every root field, the operation that calls it, and the least role it needs.
tests/test_permissions.py calls each with every role; tests/unit/test_permissions.py checks that it
covers the schema's root fields."""

from __future__ import annotations

from typing import Any

from documents.roles import Role
from services.node_ids import NodeType, encode_id

ANY = None  # the field needs no role at all
SOME_TOKEN_ID = encode_id(NodeType.API_TOKEN, "64b000000000000000000000")
NONE = "64b000000000000000000000"  # ids of objects that do not exist: enough to reach the role check
ASSET, COLL, DATUM = encode_id(NodeType.ASSET, NONE), encode_id(NodeType.COLLECTION, NONE), encode_id(NodeType.DATUM, NONE)
DATASET, VERSION = encode_id(NodeType.DATASET, NONE), encode_id(NodeType.DATASET_VERSION, NONE)
SCHEMA, SET, RECORD = encode_id(NodeType.ANNOTATION_SCHEMA, NONE), encode_id(NodeType.ANNOTATION_SET, NONE), encode_id(NodeType.ANNOTATION_RECORD, NONE)
RATIOS = {"train": 1, "validation": 0, "test": 0}
W = Role.CONTRIBUTOR

# root field -> (operation in graphql/operations, variables, least role). Subscriptions are
# checked over WebSocket in test_subscriptions.py; listed here so the matrix stays complete.
MATRIX: dict[str, tuple[str, dict[str, Any], Role | None]] = {
    "Query.health": ("Status", {}, ANY),
    "Query.me": ("Me", {}, ANY),
    "Query.mounts": ("Mounts", {}, Role.VIEWER),
    "Query.ingestRoots": ("IngestRoots", {}, Role.VIEWER),  # empty below CONTRIBUTOR (test_ingest.py)
    "Query.summary": ("Summary", {"after": "2020-01-01T00:00:00Z"}, Role.VIEWER),
    # node/nodes need VIEWER, and then the role of the type asked for: tokens are ADMIN's.
    "Query.node": ("Node", {"id": SOME_TOKEN_ID}, Role.ADMIN),
    "Query.nodes": ("Nodes", {"ids": [SOME_TOKEN_ID]}, Role.ADMIN),
    "Query.apiTokens": ("ApiTokens", {}, Role.ADMIN),
    "Query.privacyExport": ("PrivacyExport", {"userId": "someone"}, Role.ADMIN),
    "Mutation.createApiToken": ("CreateApiToken", {"input": {"name": "made-by-matrix", "role": "VIEWER"}}, Role.ADMIN),
    "Mutation.revokeApiToken": ("RevokeApiToken", {"id": SOME_TOKEN_ID}, Role.ADMIN),
    "Subscription.heartbeat": ("Heartbeat", {}, Role.VIEWER),
    # the data graph: reads need VIEWER, writes CONTRIBUTOR
    "Query.asset": ("Asset", {"id": ASSET}, Role.VIEWER),
    "Query.assetByAlias": ("AssetByAlias", {"alias": "x"}, Role.VIEWER),
    "Query.assets": ("Assets", {}, Role.VIEWER),
    "Query.collection": ("Collection", {"id": COLL}, Role.VIEWER),
    "Query.collections": ("Collections", {}, Role.VIEWER),
    "Query.datum": ("Datum", {"id": DATUM, "role": "image"}, Role.VIEWER),
    "Query.datums": ("Datums", {}, Role.VIEWER),
    "Query.dataset": ("Dataset", {"name": "x", "version": "v1"}, Role.VIEWER),
    "Query.datasets": ("Datasets", {}, Role.VIEWER),
    "Query.datasetVersion": ("DatasetVersion", {"id": VERSION}, Role.VIEWER),
    "Query.trainingSplit": ("TrainingSplit", {"version": VERSION, "ratios": RATIOS}, Role.VIEWER),
    "Query.annotationSchemas": ("AnnotationSchemas", {}, Role.VIEWER),
    "Query.annotationSets": ("AnnotationSets", {}, Role.VIEWER),
    "Query.annotations": ("Annotations", {}, Role.VIEWER),
    "Mutation.storeValue": ("StoreValue", {"input": {"name": "v", "value": 1}}, W),
    "Mutation.storeText": ("StoreText", {"input": {"name": "t", "text": "x"}}, W),
    "Mutation.updateAsset": ("UpdateAsset", {"input": {"id": ASSET}}, W),
    "Mutation.deleteAsset": ("DeleteAsset", {"id": ASSET}, W),
    "Mutation.deleteDatum": ("DeleteDatum", {"id": DATUM}, W),
    "Mutation.deleteDataset": ("DeleteDataset", {"id": DATASET}, W),
    "Mutation.deleteDatasetVersion": ("DeleteDatasetVersion", {"id": VERSION}, Role.ADMIN),
    "Mutation.deleteAnnotationRecord": ("DeleteAnnotationRecord", {"id": RECORD}, W),
    "Mutation.supersedeAnnotation": ("SupersedeAnnotation", {"input": {"id": RECORD, "reason": "typo", "record": {
        "assetId": ASSET, "kind": "CLASSIFICATION", "label": "dent"}}}, W),
    "Mutation.deleteAnnotationSet": ("DeleteAnnotationSet", {"id": SET}, W),
    "Mutation.deleteAnnotationSchema": ("DeleteAnnotationSchema", {"id": SCHEMA}, W),
    "Mutation.addAliases": ("AddAliases", {"assetId": ASSET, "aliases": ["a"]}, W),
    "Mutation.moveAlias": ("MoveAlias", {"alias": "a", "assetId": ASSET}, W),
    "Mutation.removeAliases": ("RemoveAliases", {"assetId": ASSET, "aliases": ["a"]}, W),
    "Mutation.pinAsset": ("PinAsset", {"assetId": ASSET}, W),
    "Mutation.unpinAsset": ("UnpinAsset", {"retentionId": encode_id(NodeType.ASSET_RETENTION, NONE)}, W),
    "Mutation.createCollection": ("CreateCollection", {"input": {"name": "c"}}, W),
    "Mutation.updateCollection": ("UpdateCollection", {"input": {"id": COLL}}, W),
    "Mutation.deleteCollection": ("DeleteCollection", {"id": COLL}, W),
    "Mutation.addToCollection": ("AddToCollection", {"input": {"collectionId": COLL, "items": [{"assetId": ASSET}]}}, W),
    "Mutation.removeFromCollection": ("RemoveFromCollection", {"collectionId": COLL, "assetIds": [ASSET]}, W),
    "Mutation.createDatums": ("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": ASSET}]}]}, W),
    "Mutation.updateDatum": ("UpdateDatum", {"input": {"id": DATUM}}, W),
    "Mutation.createDataset": ("CreateDataset", {"input": {"name": "d"}}, W),
    "Mutation.createDatasetVersion": ("CreateDatasetVersion", {"input": {"datasetId": DATASET, "version": "v1"}}, W),
    "Mutation.prepareBundleImport": ("PrepareBundleImport", {"input": {"path": "no-such-bundle"}}, W),
    "Mutation.commitBundleImport": ("CommitBundleImport", {"input": {"path": "no-such-bundle"}}, W),
    "Mutation.createAnnotationSchema": ("CreateAnnotationSchema", {"input": {"name": "s", "kinds": ["BBOX"], "labels": []}}, W),
    "Mutation.createAnnotationSet": ("CreateAnnotationSet", {"input": {"name": "s", "purpose": "REVIEW", "schemaId": SCHEMA}}, W),
    "Mutation.addAnnotations": ("AddAnnotations", {"setId": SET, "records": [{"assetId": ASSET, "kind": "BBOX"}]}, W),
    "Mutation.verifyAnnotations": ("VerifyAnnotations", {"ids": [RECORD], "verified": True}, W),
    # payloads
    "Query.uploadSession": ("UploadSession", {"id": encode_id(NodeType.UPLOAD_SESSION, NONE)}, Role.VIEWER),
    "Mutation.createUpload": ("CreateUpload", {"input": {"name": "f", "sizeBytes": 1}}, W),
    "Mutation.completeUpload": ("CompleteUpload", {"input": {"id": encode_id(NodeType.UPLOAD_SESSION, NONE)}}, W),
    "Mutation.createUploads": ("CreateUploads", {"inputs": [{"name": "f", "sizeBytes": 1}]}, W),
    "Mutation.completeUploads": ("CompleteUploads", {"ids": [encode_id(NodeType.UPLOAD_SESSION, NONE)]}, W),
    "Mutation.abortUpload": ("AbortUpload", {"id": encode_id(NodeType.UPLOAD_SESSION, NONE)}, W),
    "Mutation.registerExternal": ("RegisterExternal", {"input": {"url": "https://example.org/a.csv"}}, W),
    "Mutation.ingestFiles": ("IngestFiles", {"inputs": [{"source": "/nowhere/f", "sizeBytes": 1}]}, W),
    "Subscription.assetStatusChanged": ("AssetStatusChanged", {}, Role.VIEWER),
    # events
    "Query.event": ("Event", {"id": encode_id(NodeType.EVENT, NONE)}, Role.VIEWER),
    "Query.events": ("Events", {}, Role.VIEWER),
    "Query.utilization": ("Utilization", {"from": "2026-01-01T00:00:00Z", "groupBy": "NODE"}, Role.VIEWER),
    "Mutation.logEvent": ("LogEvent", {"input": {"eventType": "LOG_INFO"}}, W),
    "Mutation.logEvents": ("LogEvents", {"inputs": [{"eventType": "LOG_INFO"}]}, W),
    "Mutation.archiveEvents": ("ArchiveEvents", {"ids": [encode_id(NodeType.EVENT, NONE)]}, Role.ADMIN),
    "Subscription.events": ("EventStream", {}, Role.VIEWER),
}

ROLES = [None, Role.VIEWER, Role.CONTRIBUTOR, Role.ADMIN]
