"""The `summary` root field."""

from __future__ import annotations

import strawberry

from resolvers.permissions import CanRead
from resolvers.summary.types import Summary


@strawberry.type
class SummaryQueries:
    @strawberry.field(permission_classes=[CanRead], description=(
        "What the lake holds, counted: assets by kind, status and mount with their bytes; collections, datasets "
        "and versions; annotation records by kind and purpose; events by level and type over a window. Any "
        "reader (VIEWER) may ask: it tells nothing the lists do not."))
    def summary(self) -> Summary:
        return Summary()
