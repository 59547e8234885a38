"""Beanie documents, one module per collection. `init_beanie` receives DOCUMENT_MODELS.

Each document declares its indexes as pymongo IndexModels in `Settings.indexes`, each with an
explicit name: `graphlake.database.ensure_indexes` creates the missing ones by that name.
"""

from documents.api_token import ApiToken

DOCUMENT_MODELS: list[type] = [ApiToken]

__all__ = ["DOCUMENT_MODELS", "ApiToken"]
