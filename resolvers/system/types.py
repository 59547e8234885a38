"""GraphQL types of the server itself."""

from __future__ import annotations

from datetime import datetime

import strawberry


@strawberry.type(description="Is the server able to serve? Needs no role.")
class Health:
    ok: bool = strawberry.field(description="Database and every mount answer.")
    database: bool = strawberry.field(description="The database answers a ping.")
    storage: bool = strawberry.field(description="Every storage mount is readable and writable.")
    version: str = strawberry.field(description="Graphlake's version.")
    schema_version: int = strawberry.field(description="Version of the stored document shapes.")


@strawberry.type(description="A named place where payload bytes are stored.")
class Mount:
    name: str = strawberry.field(description="Its name, as `createUpload(input: {mount:})` and `StorageRef.mount` give it.")
    backend: str = strawberry.field(description="`local` or `s3`.")
    is_default: bool = strawberry.field(description="Whether uploads that name no mount go here.")
    local_root: str | None = strawberry.field(default=None, description=(
        "Local mounts that take direct writes: their directory on the server. A client sharing that filesystem "
        "sees `localId` in its `.graphlake-mount` file, and may then upload with createUpload(direct: true)."))
    local_id: str | None = strawberry.field(default=None, description="What that directory's `.graphlake-mount` file holds.")
    owned: bool = strawberry.field(default=True, description=(
        "Whether this lake owns the mount. False on a mount another lake owns (a restored copy of a lake, given "
        "its mounts): this lake then reads the mount's files and never writes, deletes or sets aside anything "
        "there, and uploads to it are refused. `graphlake mounts adopt NAME` takes the mount over."))
    owner_lake: str | None = strawberry.field(default=None, description=(
        "The id of the lake that owns the mount, as the mount's `.graphlake-owner` file names it (null while "
        "unknown: the mount could not be asked yet)."))


@strawberry.type(description="A tick of the `heartbeat` subscription.")
class Heartbeat:
    sequence: int = strawberry.field(description="1 for the first tick of this subscription.")
    at: datetime = strawberry.field(description="The server's time at the tick (UTC).")
