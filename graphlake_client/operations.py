"""The GraphQL documents the client sends, with the fields it reads back."""

from __future__ import annotations

ASSET_FIELDS = "id name status sizeBytes sha256 mediaType"
SESSION_FIELDS = ("id status url headers partSizeBytes parts { partNumber url uploaded } directPath unchanged "
                  f"asset {{ {ASSET_FIELDS} }}")

CREATE_UPLOAD = f"""mutation ($input: CreateUploadInput!) {{ createUpload(input: $input) {{ {SESSION_FIELDS} }} }}"""
CREATE_UPLOADS = f"""mutation ($inputs: [CreateUploadInput!]!) {{ createUploads(inputs: $inputs) {{ {SESSION_FIELDS} }} }}"""
SESSION = f"""query ($id: ID!) {{ uploadSession(id: $id) {{ {SESSION_FIELDS} }} }}"""
COMPLETE = f"""mutation ($id: ID!, $sha256: String) {{
  completeUpload(input: {{id: $id, sha256: $sha256}}) {{ {ASSET_FIELDS} }}
}}"""
COMPLETE_UPLOADS = f"""mutation ($ids: [ID!]!, $sha256s: [String]) {{
  completeUploads(ids: $ids, sha256s: $sha256s) {{ assets {{ {ASSET_FIELDS} }} failures {{ uploadId code message }} }}
}}"""
SETTLED = f"""query ($id: ID!) {{ uploadSession(id: $id) {{ status expiresAt asset {{ {ASSET_FIELDS} }} }} }}"""
MOUNTS = """{ mounts { name isDefault localRoot localId } }"""

FIND_COLLECTION = """query ($name: String!) { collections(nameContains: $name, first: 100) { edges { node { id name } } } }"""
CREATE_COLLECTION = """mutation ($name: String!) { createCollection(input: {name: $name}) { id name } }"""

LOG_EVENTS = """mutation ($inputs: [EventInput!]!) { logEvents(inputs: $inputs) { ids } }"""

DOWNLOAD = """query ($id: ID!) { asset(id: $id) { id name sizeBytes sha256 downloadUrl } }"""
DOWNLOAD_BY_ALIAS = """query ($alias: String!) { assetByAlias(alias: $alias) { id name sizeBytes sha256 downloadUrl } }"""
