"""Payload types shared by several domains."""

import strawberry


@strawberry.type(description="The result of a delete, revoke or unpin.")
class DeletePayload:
    id: strawberry.ID = strawberry.field(description="The ID of what was removed.")
    deleted: bool = strawberry.field(description="True once it is gone (also when it was gone already).")
    broken: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="What a forced delete took the object from, or left pointing at it: its collections, "
                    "dataset versions and pins in the order they pinned it, then the first five datums and the "
                    "first five annotation records using it; the first 100 of those (`brokenCount` counts "
                    "them all). The audit trail records them. Empty for any other delete.")
    broken_count: int = strawberry.field(
        default=0,
        description="How many holders a forced delete broke in all: the collections it left, the manual pins "
                    "it released, and every dataset version, datum and annotation record still pointing at it "
                    "(`broken` names the first 100). 0 for any other delete.")
