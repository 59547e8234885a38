"""Payload types shared by several domains."""

import strawberry


@strawberry.type(description="The result of a delete, revoke or unpin.")
class DeletePayload:
    id: strawberry.ID = strawberry.field(description="The ID of what was removed.")
    deleted: bool = strawberry.field(description="True once it is gone (also when it was gone already).")
