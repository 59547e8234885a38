"""The GraphQL documents the client sends, with the fields it reads back."""

from __future__ import annotations

ASSET_FIELDS = "id kind name status sizeBytes sha256 mediaType"  # what an upload answers with (assets.Asset, in part)
SESSION_FIELDS = ("id status expiresAt url headers partSizeBytes parts { partNumber url uploaded } directPath unchanged "
                  f"asset {{ {ASSET_FIELDS} }}")

CREATE_UPLOAD = f"""mutation CreateUpload($input: CreateUploadInput!) {{ createUpload(input: $input) {{ {SESSION_FIELDS} }} }}"""
CREATE_UPLOADS = f"""mutation CreateUploads($inputs: [CreateUploadInput!]!) {{ createUploads(inputs: $inputs) {{ {SESSION_FIELDS} }} }}"""
SESSION = f"""query Session($id: ID!) {{ uploadSession(id: $id) {{ {SESSION_FIELDS} }} }}"""
COMPLETE = f"""mutation Complete($id: ID!, $sha256: String) {{
  completeUpload(input: {{id: $id, sha256: $sha256}}) {{ {ASSET_FIELDS} }}
}}"""
COMPLETE_UPLOADS = f"""mutation CompleteUploads($ids: [ID!]!, $sha256s: [String]) {{
  completeUploads(ids: $ids, sha256s: $sha256s) {{ assets {{ {ASSET_FIELDS} }} failures {{ uploadId code message }} }}
}}"""
SETTLED = f"""query Settled($id: ID!) {{ uploadSession(id: $id) {{ status expiresAt asset {{ {ASSET_FIELDS} }} }} }}"""
# What uploads ask the server once per client: where direct writes go and where it ingests from.
STORAGE_FACTS = """query StorageFacts { mounts { name isDefault backend localRoot localId } ingestRoots }"""
MOUNTS = """query Mounts { mounts { name isDefault backend localRoot localId } }"""  # a server from before ingestRoots
MOUNT_BACKENDS = """query MountBackends { mounts { name backend } }"""
INGEST_FILES = f"""mutation IngestFiles($inputs: [IngestFileInput!]!, $mount: String) {{
  ingestFiles(inputs: $inputs, mount: $mount) {{ unchanged asset {{ {ASSET_FIELDS} }} }}
}}"""

FIND_COLLECTION = """query FindCollection($name: String!, $after: String) {
  collections(nameContains: $name, first: 500, after: $after) { edges { node { id name } } pageInfo { hasNextPage endCursor } }
}"""
CREATE_COLLECTION = """mutation CreateCollection($name: String!) { createCollection(input: {name: $name}) { id name } }"""

LOG_EVENTS = """mutation LogEvents($inputs: [EventInput!]!) { logEvents(inputs: $inputs) { ids } }"""

# --- the verbs (assets.py, downloads.py, vault.py): an asset as users read it
ASSET_DETAIL = ("id kind status name description mediaType sizeBytes sha256 labels metadata aliases "
                "owner { userId experimentId campaignId projectId workflowId stepId nodeId labId workcellId managerId } "
                "dataTimestamp createdAt updatedAt storage { mount uri external }")
PAYLOAD = "value text downloadUrl"  # what loading an asset's content needs: one of the three is set
ASSET = f"""query Asset($id: ID!) {{ asset(id: $id) {{ {ASSET_DETAIL} {PAYLOAD} }} }}"""
ASSET_BY_ALIAS = f"""query AssetByAlias($alias: String!) {{ assetByAlias(alias: $alias) {{ {ASSET_DETAIL} {PAYLOAD} }} }}"""
ASSET_ID_BY_ALIAS = """query AssetIdByAlias($alias: String!) { assetByAlias(alias: $alias) { id } }"""
ASSET_ID = """query AssetId($id: ID!) { asset(id: $id) { id } }"""
# The file verbs' answer: uploads answer with ASSET_FIELDS alone (an import completes thousands), so
# store_file and store_directory read the rest of what they stored, up to 100 assets a call.
ASSETS_BY_IDS = f"""query AssetsByIds($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on Asset {{ {ASSET_DETAIL} }} }} }}"""
STORE_VALUE = f"""mutation StoreValue($input: StoreValueInput!) {{ storeValue(input: $input) {{ {ASSET_DETAIL} }} }}"""
STORE_TEXT = f"""mutation StoreText($input: StoreTextInput!) {{ storeText(input: $input) {{ {ASSET_DETAIL} }} }}"""
REGISTER_EXTERNAL = f"""mutation RegisterExternal($input: RegisterExternalInput!) {{
  registerExternal(input: $input) {{ count assets {{ {ASSET_DETAIL} }} unchangedCount unchanged {{ {ASSET_DETAIL} }} }}
}}"""
ADD_TO_COLLECTION = """mutation AddToCollection($input: AddToCollectionInput!) { addToCollection(input: $input) { id } }"""
ASSETS_PAGE = f"""query AssetsPage($filter: AssetFilter, $orderBy: AssetOrder, $first: Int, $after: String, $payload: Boolean!) {{
  assets(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {{
    edges {{ node {{ {ASSET_DETAIL} value @include(if: $payload) text @include(if: $payload) }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
ADD_ALIASES = """mutation AddAliases($assetId: ID!, $aliases: [String!]!) { addAliases(assetId: $assetId, aliases: $aliases) { id aliases } }"""
MOVE_ALIAS = """mutation MoveAlias($alias: String!, $assetId: ID!, $expectedAssetId: ID) {
  moveAlias(alias: $alias, assetId: $assetId, expectedAssetId: $expectedAssetId) { id aliases }
}"""
DELETE_ASSET = """mutation DeleteAsset($id: ID!) { deleteAsset(id: $id) { id deleted } }"""
UPDATE_ASSET = """mutation UpdateAsset($input: UpdateAssetInput!) { updateAsset(input: $input) { id } }"""
EVENT_FIELDS = ("id eventType level levelNumber message timestamp receivedAt alert traceId spanId archived origin data "
                "source { userId experimentId campaignId projectId workflowId stepId nodeId labId workcellId managerId }")
EVENTS_PAGE = f"""query EventsPage($filter: EventFilter, $first: Int, $after: String, $orderBy: EventOrder!, $direction: OrderDirection!) {{
  events(filter: $filter, first: $first, after: $after, orderBy: $orderBy, direction: $direction) {{
    edges {{ node {{ {EVENT_FIELDS} }} }} pageInfo {{ endCursor hasNextPage }}
  }}
}}"""
# follow_events (follow.py), over SSE: `after` an event's ID or a cursor of events(orderBy: RECEIVED).
FOLLOW_EVENTS = f"""subscription FollowEvents($filter: EventFilter, $after: String) {{
  events(filter: $filter, after: $after) {{ {EVENT_FIELDS} }}
}}"""

# --- COCO import and export (coco.py, coco_export.py)
DATUMS_BY_METADATA = """query DatumsByMetadata($metadata: [JsonPredicate!], $after: String) {
  datums(role: "image", metadata: $metadata, first: 500, after: $after) {
    edges { node { id metadata roles { role asset { id } } } } pageInfo { hasNextPage endCursor }
  }
}"""
CREATE_DATUMS = """mutation CreateDatums($inputs: [CreateDatumInput!]!) { createDatums(inputs: $inputs) { id } }"""
SCHEMAS = """query Schemas($after: String) {
  annotationSchemas(first: 500, after: $after) {
    edges { node { id name version labels { name } } } pageInfo { hasNextPage endCursor }
  }
}"""
CREATE_SCHEMA = """mutation CreateSchema($input: CreateAnnotationSchemaInput!) { createAnnotationSchema(input: $input) { id name version } }"""
# Without recordCount: counting every set's records reads the whole records collection, a cost that
# grows with the lake; the importer asks the count of the one set it matched (SET_RECORD_COUNT).
# With its source: another model's predictions set of the same name is not the one an import fills.
SETS = """query Sets($after: String) {
  annotationSets(first: 500, after: $after) {
    edges { node { id name purpose source { kind name } schema { id } } } pageInfo { hasNextPage endCursor }
  }
}"""
# What a set holds, record by record, as an import compares it with what it makes (dataset_import.records_held):
# a mask's asset aside, which an import uploads only with its records.
SET_RECORD_CONTENT = """query SetRecordContent($id: ID!, $after: String) {
  node(id: $id) { ... on AnnotationSet { records(first: 500, after: $after, filter: {includeSuperseded: true}) {
    edges { node { key label score attributes datum { id }
      geometry { __typename ... on BBox { x y width height } ... on Polygon { points { x y } }
        ... on Keypoints { points { name x y visible } } } } }
    pageInfo { hasNextPage endCursor } } } }
}"""
SET_RECORD_COUNT = """query SetRecordCount($id: ID!) { node(id: $id) { ... on AnnotationSet { recordCount } } }"""
CREATE_SET = """mutation CreateSet($input: CreateAnnotationSetInput!) { createAnnotationSet(input: $input) { id name purpose recordCount } }"""
ADD_ANNOTATIONS = """mutation AddAnnotations($setId: ID!, $records: [AnnotationRecordInput!]!) { addAnnotations(setId: $setId, records: $records) { count } }"""
DATASET = """query Dataset($name: String!) { dataset(name: $name) { id } }"""
CREATE_DATASET = """mutation CreateDataset($name: String!) { createDataset(input: {name: $name}) { id } }"""
VERSION_FIELDS = "id version description datumCount manifestSha256 createdAt dataset { id name } parent { id version }"
VERSION_ID = """query VersionId($dataset: String!, $version: String!) { datasetVersion(dataset: $dataset, version: $version) { id } }"""
CREATE_VERSION = f"""mutation CreateVersion($input: CreateDatasetVersionInput!) {{ createDatasetVersion(input: $input) {{ {VERSION_FIELDS} }} }}"""
VERSION = f"""query Version($id: ID, $dataset: String, $version: String) {{
  datasetVersion(id: $id, dataset: $dataset, version: $version) {{
    {VERSION_FIELDS} annotationSets {{ id name purpose source {{ kind name version }} schema {{ labels {{ name }} }} }}
  }}
}}"""
FILE_FIELDS = "id name sizeBytes sha256 downloadUrl storage { mount key external }"  # storage: for direct reads
# A version's records as its content file holds them (graphlake_client/version_file.py), a mask's asset in full.
RECORD_FIELDS = f"""id key kind label score value attributes verified source {{ kind }} set {{ id }} asset {{ id }}
  geometry {{ __typename ... on BBox {{ x y width height }} ... on RotatedBBox {{ cx cy width height angle }}
    ... on Polygon {{ points {{ x y }} }} ... on Polyline {{ points {{ x y }} }}
    ... on Keypoints {{ points {{ name x y visible }} }} ... on Mask {{ asset {{ {FILE_FIELDS} }} }} }}"""
# A version's datums as it froze them (roles, metadata, split, its copies of the records), a page at
# a time; a datum with more records than one nested page is read on by asking for it alone again.
VERSION_DATUMS = f"""query VersionDatums($id: ID!, $first: Int!, $after: String, $records: Int!, $recordsAfter: String) {{
  datasetVersion(id: $id) {{
    datums(first: $first, after: $after) {{
      edges {{ cursor node {{ id split metadata roles {{ role asset {{ id }} }} asset(role: "image") {{ {FILE_FIELDS} }}
        annotations(first: $records, after: $recordsAfter) {{
          edges {{ node {{ {RECORD_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}"""

# A version's content file (graphlake_client/version_file.py), and the assets it names, by id.
VERSION_CONTENT = """query VersionContent($id: ID!) {
  datasetVersion(id: $id) { content { format mount key sizeBytes sha256 downloadUrl } }
}"""
FILES_BY_ID = f"""query FilesById($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on Asset {{ {FILE_FIELDS} }} }} }}"""

# Where each page of a version's datums starts (graphlake_client/version_reading.py).
VERSION_DATUM_CURSORS = """query VersionDatumCursors($id: ID!, $first: Int!, $after: String) {
  datasetVersion(id: $id) { datums(first: $first, after: $after) { edges { cursor } pageInfo { hasNextPage endCursor } } }
}"""

# --- bundles between lakes (bundle_export.py, bundle_import.py); they store assets with the verbs' operations above
BUNDLE_VERSION = """query BundleVersion($id: ID, $dataset: String, $version: String) {
  datasetVersion(id: $id, dataset: $dataset, version: $version) {
    id version description datumCount manifestSha256 dataset { name description } splitCounts { split count }
    annotationSets { id name purpose source { kind name version }
      schema { id name version kinds labels { name displayName color } allowScores requiredAttributes } }
  }
}"""
BUNDLE_RECORD_FIELDS = """id key kind label score value attributes verified source { kind name version } set { id } asset { id }
  geometry { __typename ... on BBox { x y width height } ... on RotatedBBox { cx cy width height angle }
    ... on Polygon { points { x y } } ... on Polyline { points { x y } }
    ... on Keypoints { points { name x y visible } } ... on Mask { asset { id } } }"""
# Like VERSION_DATUMS, with every role and every field of the records the manifest hash covers.
BUNDLE_DATUMS = f"""query BundleDatums($id: ID!, $first: Int!, $after: String, $records: Int!, $recordsAfter: String) {{
  datasetVersion(id: $id) {{
    datums(first: $first, after: $after) {{
      edges {{ cursor node {{ id split metadata roles {{ role asset {{ id }} }}
        annotations(first: $records, after: $recordsAfter) {{
          edges {{ node {{ {BUNDLE_RECORD_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}"""
ASSETS_BY_SHA = """query AssetsBySha($filter: AssetFilter!, $first: Int!, $after: String) {
  assets(filter: $filter, first: $first, after: $after) { edges { node { id sha256 } } pageInfo { hasNextPage endCursor } }
}"""
BUNDLE_ASSETS = """query BundleAssets($ids: [ID!]!, $expires: Int!) {
  nodes(ids: $ids) { ... on Asset { id kind status name description mediaType sizeBytes sha256 labels metadata
    storage { uri external mount key } value text downloadUrl(expiresInSeconds: $expires) } }
}"""
BUNDLE_DATUM_PAGE = "edges { node { id split metadata roles { role asset { id } } } } pageInfo { hasNextPage endCursor }"
BUNDLE_ASSET_DATUMS = f"""query BundleAssetDatums($ids: [ID!]!, $first: Int!) {{
  nodes(ids: $ids) {{ ... on Asset {{ id datums(first: $first) {{ {BUNDLE_DATUM_PAGE} }} }} }}
}}"""
BUNDLE_SCHEMAS = """query BundleSchemas($after: String) {
  annotationSchemas(first: 500, after: $after) {
    edges { node { id name version kinds labels { name displayName color } allowScores requiredAttributes } }
    pageInfo { hasNextPage endCursor }
  }
}"""
BUNDLE_SETS = """query BundleSets($after: String) {
  annotationSets(first: 500, after: $after) {
    edges { node { id name purpose source { kind name version } schema { id } } } pageInfo { hasNextPage endCursor }
  }
}"""
BUNDLE_SET_RECORDS = f"""query BundleSetRecords($setId: ID!, $after: String) {{
  annotations(filter: {{setIds: [$setId]}}, first: 500, after: $after) {{
    edges {{ node {{ {BUNDLE_RECORD_FIELDS} datum {{ id }} }} }} pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
ADD_BUNDLE_RECORDS = """mutation AddBundleRecords($setId: ID!, $records: [AnnotationRecordInput!]!) {
  addAnnotations(setId: $setId, records: $records) { count ids }
}"""
VERIFY_RECORDS = """mutation VerifyRecords($ids: [ID!]!) { verifyAnnotations(ids: $ids, verified: true) { id } }"""
CREATE_DATASET_DESCRIBED = """mutation CreateDatasetDescribed($input: CreateDatasetInput!) { createDataset(input: $input) { id } }"""
BUNDLE_REPORT_FIELDS = """dataset versionName manifestSha256 policy assets { new present } newBytes datums { new present }
  schemas { new present } sets { new present } records { new present } toVerify versionState conflicts committed sameHash
  version { id version manifestSha256 }"""
PREPARE_BUNDLE_IMPORT = f"""mutation PrepareBundleImport($input: BundleImportInput!) {{ prepareBundleImport(input: $input) {{ {BUNDLE_REPORT_FIELDS} }} }}"""
COMMIT_BUNDLE_IMPORT = f"""mutation CommitBundleImport($input: BundleImportInput!) {{ commitBundleImport(input: $input) {{ {BUNDLE_REPORT_FIELDS} }} }}"""
