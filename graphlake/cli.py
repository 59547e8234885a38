"""The `graphlake` command (also `python -m graphlake`)."""

from __future__ import annotations

import errno
import faulthandler
import json
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape  # a message's [brackets] are text, not styles

from documents.clock import MAX_DAYS
from documents.roles import Role
from graphlake import PROJECT_ROOT
from graphlake.cli_exchange import register as register_exchange
from graphlake.cli_lake import Node, Owner, owner_of
from graphlake.cli_lake import register as register_lake
from graphlake.cli_lifecycle import register as register_lifecycle
from graphlake.cli_privacy import register as register_privacy
from graphlake.cli_support import (
    ServerUrl,
    Token,
    client_run,
    console,
    describe_os_error,
    errors,
    load_settings,
    print_rows,
    server_url,
)
from graphlake.cli_support import run as run_command

if TYPE_CHECKING:
    from documents.api_token import ApiToken

# Each command imports what it uses in its body (graphlake/cli_support.py says why).

MAX_CHECK_SECONDS = 3600  # PyMongo takes a server selection timeout below a billion milliseconds

app = typer.Typer(
    help="Graphlake: a GraphQL data lake server.", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (GRAPHLAKE_HOST).")] = None,
    # Bounded here as GRAPHLAKE_PORT is in the settings: the override skips their validation, and
    # `--port 70000` listened on 70000 % 65536 while the banner and signed URLs named :70000.
    port: Annotated[int | None, typer.Option(help="Port to listen on (GRAPHLAKE_PORT).", min=1, max=65535)] = None,
) -> None:
    """Start the server (the embedded FerretDB too, unless GRAPHLAKE_MONGODB_URL is set)."""
    from graphlake.app import create_app
    from graphlake.collector import tune_for_serving
    from graphlake.database_access import require_current_schema
    from graphlake.http_server import port_taken, serve
    from graphlake.local_services import ServiceError
    from graphlake.logs import configure_logging
    from graphlake.tracing import TracingNotStarted

    settings = load_settings()
    settings = settings.model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v is not None})
    configure_logging(settings.log_level, settings.log_json)
    if (error := port_taken(settings.host, settings.port)) is not None:
        hint = " (another server there? choose another with GRAPHLAKE_PORT or --port)" \
            if error.errno == errno.EADDRINUSE else ""
        errors.print(f"[red]error:[/red] cannot listen on {settings.host}:{settings.port}: {error.strerror or error}{hint}")
        raise typer.Exit(1)
    # Checked here too, so a database that needs a migration gets one line saying what to run
    # rather than a failed startup's traceback.
    run_command(require_current_schema(settings))
    # `kill -USR1 <pid>` prints every thread's stack to the server's stderr: how an operator (or a test)
    # sees where a server that does not answer or does not stop is waiting, without a debugger.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        app = create_app(settings, announce=True)
        tune_for_serving()  # graphlake/collector.py says why
        server = serve(app, settings)
        server.run()
        if not server.started:  # the app's startup failed (said in the log): as uvicorn.run exits
            raise typer.Exit(3)
    except (ServiceError, TracingNotStarted) as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write; - for stdout.")] = PROJECT_ROOT
    / "graphql" / "schema.graphql",
) -> None:
    """Write the GraphQL schema (SDL) exported from the code."""
    from resolvers.schema import build_schema

    sdl = build_schema().as_str() + "\n"
    if str(output) == "-":
        sys.stdout.write(sdl)
    else:
        output.write_text(sdl)
        errors.print(f"wrote {output}")


@app.command()
def check(
    seconds: Annotated[float, typer.Option(help="How long to wait for each part before calling it unreachable.")] = 3.0,
) -> None:
    """Check that the database and every storage mount are reachable: one line each, naming what is not."""
    if not 0 < seconds <= MAX_CHECK_SECONDS:  # also NaN; 0 or less reached PyMongo, which raised a traceback
        raise typer.BadParameter(f"must be 0 < seconds <= {MAX_CHECK_SECONDS}, not {seconds}", param_hint="--seconds")
    from graphlake.database_access import for_checking
    from services.health import HealthReport, probe

    settings = load_settings()
    where = "embedded FerretDB" if settings.embedded_database else settings.database

    async def run() -> bool:
        async with for_checking(settings, seconds) as (db, stores):
            if isinstance(db, str):  # it could not be started: say so, and still check the mounts
                report = await probe(None, stores, seconds)
                report = HealthReport(database_error=db, mount_errors=report.mount_errors)
            else:
                report = await probe(db, stores, seconds)
        failure = (report.database_error or "").removeprefix("database: ")
        console.print(f"database ({where}): " + (f"[red]{failure}[/red]" if failure else "[green]ok[/green]"), soft_wrap=True)
        for name, error in report.mount_errors.items():
            console.print(f"mount {name}: " + ("[green]ok[/green]" if error is None else f"[red]{error}[/red]"), soft_wrap=True)
        return report.ok

    if not run_command(run()):
        raise typer.Exit(1)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Unique name, e.g. the person or job that uses it.")],
    role: Annotated[Role, typer.Option(case_sensitive=False, help="What the token may do.")] = Role.VIEWER,
    user: Annotated[str | None, typer.Option(help="The user id this token acts for.")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days.")] = None,
) -> None:
    """Create a token and print its secret (shown only this once)."""
    from documents.clock import utcnow
    from graphlake.runtime import open_state
    from services import auth as tokens
    from services.events import audit
    from services.node_ids import NodeType, encode_id

    # 0 made a token that never expired; `inf` (or past a century) overflowed the date into a traceback.
    if expires_in_days is not None and not 0 < expires_in_days <= MAX_DAYS:
        raise typer.BadParameter(f"must be more than 0 days, and at most {MAX_DAYS}, not {expires_in_days}",
                                 param_hint="--expires-in-days")
    settings = load_settings(existing_lake=True)
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days is not None else None

    async def run() -> str:
        async with open_state(settings, mounts=False) as state:
            token, secret = await tokens.create_token(name, role, user_id=user, expires_at=expires_at, created_by="cli")
            await audit.record_command(state.feed, settings, "token create", [encode_id(NodeType.API_TOKEN, token.id)],
                                       name=name, role=role.value)
        return secret

    secret = run_command(run())
    errors.print(f"created {role.value} token {name!r}; its secret (shown once):")
    console.print(secret, highlight=False)


@token_app.command("list")
def token_list(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
) -> None:
    """List tokens (never their secrets)."""
    from documents.api_token import ApiToken
    from documents.clock import utcnow
    from graphlake.runtime import open_state
    from services.node_ids import NodeType, encode_id

    settings = load_settings(existing_lake=True)

    async def run() -> list[ApiToken]:
        async with open_state(settings, mounts=False):
            query = {} if all_ else {"revoked_at": None}
            return await ApiToken.find(query).sort([("created_at", 1)]).to_list()

    columns = ("id", "name", "role", "user", "hint", "created", "expires", "state")
    now = utcnow()
    rows = [
        (encode_id(NodeType.API_TOKEN, t.id), t.name, t.role.value, t.user_id or "", t.hint + "...", f"{t.created_at:%Y-%m-%d %H:%M}",
         f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "",
         "revoked" if t.revoked_at else ("expired" if not t.is_usable(now) else "active"))
        for t in run_command(run())  # type: ignore[union-attr]
    ]
    print_rows(columns, rows)


@token_app.command("revoke")
def token_revoke(id_or_name: Annotated[str, typer.Argument(help="The token's id (as `token list` and the API show it) or name.")]) -> None:
    """Revoke a token at once."""
    from graphlake.runtime import open_state
    from services import auth as tokens
    from services.events import audit
    from services.node_ids import NodeType, encode_id

    settings = load_settings(existing_lake=True)

    async def run() -> ApiToken:
        async with open_state(settings, mounts=False) as state:
            token = await tokens.revoke_token(await tokens.find_token(id_or_name))
            await audit.record_command(state.feed, settings, "token revoke", [encode_id(NodeType.API_TOKEN, token.id)],
                                       name=token.name)
            return token

    token = run_command(run())
    errors.print(f"revoked token {token.name!r}")  # type: ignore[union-attr]


# --- client commands: talk to a running server over HTTP

@app.command()
def upload(
    paths: Annotated[list[Path], typer.Argument(help="Files and directories.", exists=True)],
    url: ServerUrl = None,
    token: Token = None,
    collection: Annotated[str | None, typer.Option(help="Put the uploads in this collection (made if missing).")] = None,
    as_archive: Annotated[bool, typer.Option("--as-archive", help="Upload each directory as one zip.")] = False,
    ignore: Annotated[list[str] | None, typer.Option(help="gitignore-style pattern to skip (repeatable).")] = None,
    manifest: Annotated[Path | None, typer.Option(help='JSON {"rel/path": {"description", "metadata", "labels"}}.')] = None,
    concurrency: Annotated[int, typer.Option(help="Parts uploaded at once.", min=1)] = 4,  # 0 waited forever
    direct: Annotated[bool, typer.Option(help="Write files into a local mount this machine shares with the server "
                                              "itself (a disk copy); --no-direct: always over HTTP.")] = True,
    ingest: Annotated[bool, typer.Option(help="Let the server copy files it reads itself (under its ingest roots, "
                                              "GRAPHLAKE_INGEST_ROOTS); --no-ingest: always upload.")] = True,
    follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", help="Follow symbolic links in directories "
                                                  "(by default they are skipped: a link may point out of the tree).")] = False,
    node: Node = None,
    owner: Owner = None,
) -> None:
    """Upload files and directories (directories keep relative paths in the collection, or go as one zip).
    Rerun after an interruption: uploads resume from the parts already stored."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from graphlake_client import Client

    entries = _read_manifest(manifest) if manifest else None
    produced_by = owner_of(owner, node)

    async def run() -> list[dict]:
        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      console=errors, transient=True) as bar:
            task = bar.add_task("uploading", total=None)
            async with Client(server_url(url), token, concurrency=concurrency, direct_writes=direct,
                              server_ingest=ingest) as lake:
                return await lake.upload_paths(paths, collection=collection, as_archive=as_archive, ignore=ignore or [],
                                               manifest=entries, follow_symlinks=follow_symlinks, owner=produced_by,
                                               progress=lambda sent, total: bar.update(task, completed=sent, total=total))

    assets = client_run(run(), token=token)
    print_rows(("id", "name", "status", "bytes", "sha256"),
                [(a["id"], a["name"], "UNCHANGED" if a.get("unchanged") else a["status"], str(a["sizeBytes"]), a["sha256"] or "")
                 for a in assets])  # type: ignore[union-attr]


def _read_manifest(path: Path) -> dict:
    """The --manifest file's entries, or exit 2 saying in one line why they cannot be read."""
    try:
        entries = json.loads(path.read_text())
    except OSError as error:
        raise typer.BadParameter(describe_os_error(error), param_hint="--manifest") from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise typer.BadParameter(f"{path} is not JSON: {error}", param_hint="--manifest") from None
    if not isinstance(entries, dict):
        raise typer.BadParameter(f'{path} is not a JSON object {{"rel/path": {{...}}}}', param_hint="--manifest")
    return entries


@app.command()
def download(
    asset: Annotated[str, typer.Argument(help="Asset ID or alias.")],
    # Text, not a Path: a Path drops the trailing slash that says `newdir/` is a directory to make.
    dest: Annotated[str | None, typer.Argument(help="File or directory (made if missing when it ends in /); "
                                                    "default: the asset's name here. A file named here is "
                                                    "replaced; one under the asset's name is not, unless --force.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a file of the asset's name in the directory.")] = False,
    url: ServerUrl = None,
    token: Token = None,
) -> None:
    """Download an asset: a file's bytes, a value's JSON (`NAME.json`) or a text, checked by size and SHA-256."""
    from graphlake_client import Client

    async def run() -> Path:
        async with Client(server_url(url), token) as lake:
            return await lake.download(asset, dest, overwrite=force)

    errors.print(f"saved {client_run(run(), token=token)}")


def _positive_days(days: float) -> float:
    """An age in days must be more than 0: `--older-than -5` would otherwise reach every event or
    asset; and at most MAX_DAYS (`inf` or 1e6 overflowed the date arithmetic into a traceback)."""
    if not 0 < days <= MAX_DAYS:  # also NaN
        raise typer.BadParameter(f"must be 0 < days <= {MAX_DAYS}, not {days}")
    return days


assets_app = typer.Typer(help="Maintain assets.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")


@assets_app.command("gc")
def assets_gc(
    older_than: Annotated[float, typer.Option("--older-than", callback=_positive_days,
                                              help="Delete assets nothing has pinned for this many days (more than 0).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False,
) -> None:
    """Delete assets no collection, dataset version or pin has held for a while (deleteAsset without force)."""
    from graphlake.runtime import open_state
    from services.assets import unpinned_rounds
    from services.events import audit
    from services.node_ids import NodeType, encode_id

    settings = load_settings(existing_lake=True)

    async def run() -> int:
        count = 0
        async with open_state(settings) as state:
            # Said and audited a round at a time (each AUDIT event names its round's first ids and
            # counts them): the list of a large backlog would wait in memory for the last round.
            async for deleted in unpinned_rounds(timedelta(days=older_than), state.stores, dry_run=dry_run):
                ids = [encode_id(NodeType.ASSET, a.id) for a in deleted]  # the API's ids
                for asset, gid in zip(deleted, ids, strict=True):
                    errors.print(f"  {gid}  {asset.kind.value:<8} {asset.name}")
                if ids and not dry_run:
                    await audit.record_command(state.feed, settings, "assets gc", ids, olderThanDays=str(older_than))
                count += len(ids)
        return count

    count = run_command(run())
    errors.print(f"{'would delete' if dry_run else 'deleted'} {count} unpinned asset(s)")


datasets_app = typer.Typer(help="Check dataset versions, and write their content files.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("verify")
def datasets_verify(
    version: Annotated[str, typer.Argument(help="The version's ID, or DATASET/VERSION by name.")],
    deep: Annotated[bool, typer.Option("--deep", help="Also read every stored file again and hash its bytes, and ask S3 whether each object registered in place is unchanged.")] = False,
) -> None:
    """Recompute a version's manifest hash from what it holds and check every asset it names; exits 1 naming what differs."""
    from graphlake.runtime import open_state
    from services.datasets import find_ready_version
    from services.snapshots import Verification, verify

    settings = load_settings(existing_lake=True)

    async def go() -> Verification:
        async with open_state(settings, mounts=deep) as state:
            return await verify(await find_ready_version(version), state.stores if deep else None)

    checked = run_command(go())
    for problem in checked.problems:
        errors.print(f"[red]differs:[/red] {escape(problem)}")
    errors.print(f"{checked.datums} datums, {checked.records} records"
                 + (f", {checked.files_read} files read, {checked.external_checked} external objects asked" if deep else "")
                 + f"; recorded {checked.stored}, computed {checked.computed}")
    console.print("ok" if checked.ok else "MISMATCH")
    if not checked.ok:
        raise typer.Exit(1)


@datasets_app.command("write-content")
def datasets_write_content(
    version: Annotated[str | None, typer.Argument(help="The version's ID, or DATASET/VERSION by name; omit with --all.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every READY version that has no content file.")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Write the named version's file again though it has one (one `verify --deep` found damaged).")] = False,
) -> None:
    """Write the content file (what exporters read) of versions that have none, on the default mount, from the copies they hold."""
    from documents.dataset import DatasetVersion, VersionStatus
    from graphlake.runtime import open_state
    from services.datasets import find_ready_version
    from services.events import audit
    from services.node_ids import NodeType, encode_id
    from services.snapshots import write_content

    if (version is None) != every or (replace and every):
        errors.print("name one version (--replace only with one), or pass --all")
        raise typer.Exit(2)
    settings = load_settings(existing_lake=True)

    async def go() -> tuple[list[str], list[str]]:
        written: list[str] = []
        failed: list[str] = []
        async with open_state(settings) as state:
            versions = ([await find_ready_version(version)] if version is not None
                        else await DatasetVersion.find({"status": VersionStatus.READY.value, "content": None}).to_list())
            for found in versions:
                if found.content is None or replace:
                    done = await write_content(found, state.stores[settings.default_mount], replace=replace)
                    (written if done else failed).append(encode_id(NodeType.DATASET_VERSION, found.id))
            if written:
                await audit.record_command(state.feed, settings, "datasets write-content", written)
        return written, failed

    written, failed = run_command(go())
    for version_id in failed:
        errors.print(f"[red]not written:[/red] {version_id} (the server's log says why)")
    console.print(f"wrote {len(written)} content file(s)")
    if failed:
        raise typer.Exit(1)


events_app = typer.Typer(help="List, archive and purge events, and report utilization.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("archive")
def events_archive(
    older_than: Annotated[float, typer.Option("--older-than", callback=_positive_days,
                                              help="Archive events older than this many days (more than 0).")],
) -> None:
    """Move old events out of default queries (they stay retrievable with includeArchived)."""
    from graphlake.runtime import open_state
    from services.events import audit
    from services.events.log import archive

    settings = load_settings(existing_lake=True)

    async def run() -> int:
        async with open_state(settings, mounts=False) as state:
            archived = await archive(timedelta(days=older_than))
            await audit.record_command(state.feed, settings, "events archive", olderThanDays=str(older_than),
                                       archived=str(archived))
            return archived

    errors.print(f"archived {run_command(run())} event(s)")


@events_app.command("purge")
def events_purge(
    older_than: Annotated[float, typer.Option("--older-than", callback=_positive_days,
                                              help="Delete archived events older than this many days (more than 0).")],
    audit_too: Annotated[bool, typer.Option("--audit-too", help="Delete archived AUDIT events too (the audit "
                                                                "trail is kept otherwise).")] = False,
) -> None:
    """Delete archived events for good (events not archived are never touched)."""
    from graphlake.runtime import open_state
    from services.events import audit
    from services.events.log import purge

    settings = load_settings(existing_lake=True)

    async def run() -> int:
        async with open_state(settings, mounts=False) as state:
            purged = await purge(timedelta(days=older_than), audit_too=audit_too)
            await audit.record_command(state.feed, settings, "events purge", olderThanDays=str(older_than),
                                       auditToo=str(audit_too).lower(), purged=str(purged))
            return purged

    errors.print(f"deleted {run_command(run())} archived event(s)")


@events_app.command("utilization")
def events_utilization(
    start: Annotated[datetime, typer.Option("--from", help="Window start (ISO-8601, UTC if no offset).")],
    end: Annotated[datetime | None, typer.Option("--to", help="Window end; default now.")] = None,
    group_by: Annotated[str, typer.Option("--group-by", help="NODE, WORKFLOW, USER or EXPERIMENT.")] = "NODE",
    csv_out: Annotated[bool, typer.Option("--csv", help="Write CSV to stdout.")] = False,
) -> None:
    """Busy time, sessions and utilization per node, workflow or user, from start/stop events."""
    import csv

    from documents.clock import utcnow
    from graphlake.runtime import open_state
    from services.events.log import SESSION_KINDS, utilization

    if group_by.upper() not in SESSION_KINDS:
        errors.print(f"[red]error:[/red] --group-by must be one of {', '.join(SESSION_KINDS)}")
        raise typer.Exit(2)
    settings = load_settings(existing_lake=True)

    async def run() -> list:
        async with open_state(settings, mounts=False):
            return await utilization(start, end or utcnow(), group_by.upper())

    rows = [(r.group, f"{r.busy_seconds:.3f}", str(r.sessions), f"{r.utilization:.6f}") for r in run_command(run())]  # type: ignore[union-attr]
    columns = ("group", "busy_seconds", "sessions", "utilization")
    if csv_out:
        writer = csv.writer(sys.stdout)
        writer.writerows([columns, *rows])
    else:
        print_rows(columns, rows)


register_lake(app, events_app)  # store, get, log, events list and follow
register_lifecycle(app)  # db, backup, restore
register_privacy(app)
register_exchange(app)  # import coco, export coco
