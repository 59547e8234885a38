"""Payload types shared by several domains."""

import strawberry


@strawberry.type(description="The result of a delete, revoke or unpin.")
class DeletePayload:
    id: strawberry.ID = strawberry.field(description="The ID of what was removed.")
    deleted: bool = strawberry.field(description="True once it is gone (also when it was gone already).")
    broken: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="What a forced delete took the object from, or left pointing at it: every collection, "
                    "dataset version and pin, and the first five datums and annotation records. The audit "
                    "trail records them.")
