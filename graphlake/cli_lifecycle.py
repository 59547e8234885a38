"""Commands that keep a lake over the years: schema versions and migrations, backups, restores, and
which lake owns each mount (services/mount_owners.py).

They work below the documents (graphlake.database_access.raw_database): a database that needs a migration
cannot be opened by the server, and a backup or restore moves raw BSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape  # a message's [brackets] are text, not styles
from typer.core import TyperGroup

from graphlake import __version__
from graphlake.cli_support import console, errors, load_settings, print_rows, run

if TYPE_CHECKING:
    from graphlake.settings import Settings
    from migrations import SchemaState, Step
    from services.backups.layout import Manifest

db_app = typer.Typer(help="The database's schema version, migrations and downgrades.", no_args_is_help=True)


class _DefaultsToCreate(TyperGroup):
    """`graphlake backup [DEST]` makes a backup and `graphlake backup verify DEST` checks one: any
    first argument that is not a subcommand goes to `create`."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["create", *args]
        return super().parse_args(ctx, args)


backup_app = typer.Typer(cls=_DefaultsToCreate, help="Back up the lake (`graphlake backup [DEST]`) or check a backup.")


mounts_app = typer.Typer(help="Which lake owns each mount; taking a mount over after a restore.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(backup_app, name="backup")
    app.command("restore")(restore)
    app.add_typer(mounts_app, name="mounts")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _log_steps(settings: Settings) -> None:
    """Route the log to stderr, as `serve` does: a migration step reports there what it found (schema
    13: the masks of older versions it pinned, and those lost already), which was dropped otherwise."""
    from graphlake.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)


@db_app.command("status")
def status() -> None:
    """The stored and expected schema versions, and the steps a migration would take. Exits 3 when
    the database needs a migration (or a downgrade) before the server can start on it."""
    from graphlake.database_access import raw_database
    from migrations import SCHEMA_VERSION, plan, read_state

    settings = load_settings()

    async def read() -> SchemaState:
        async with raw_database(settings) as db:
            return await read_state(db)

    state = run(read())
    if state.version is None:
        stored = "none: the database is empty (recorded at the first start)"
    else:
        stored = f"{state.version} (written by Graphlake {state.written_by or 'from before versions were recorded'})"
    console.print(f"database: {settings.database}\nstored schema version: {stored}\n"
                  f"this Graphlake: {__version__}, schema version {SCHEMA_VERSION}")
    if state.restoring:
        console.print(f"[red]a restore did not finish[/red]: {state.restoring}")
    if state.interrupted:
        console.print(f"[red]a migration step did not finish[/red]: {state.interrupted}")
    steps = plan(state.version, SCHEMA_VERSION) if state.version and state.version <= SCHEMA_VERSION else []
    for step in steps:
        console.print(f"pending: {step}")
    if state.version is not None and state.version > SCHEMA_VERSION:
        console.print(f"[red]the database is newer than this Graphlake[/red]: run Graphlake "
                      f"{state.written_by or 'of that schema'} (a release that reads schema version {state.version}), "
                      f"or `graphlake db downgrade --to {SCHEMA_VERSION}` with it")
    if state.version is not None and not state.current:
        raise typer.Exit(3)


def _migrate(to: int | None, dry_run: bool, no_backup: bool, take_over: bool, force: bool) -> None:
    from graphlake.database_access import raw_database
    from migrations import SCHEMA_VERSION, migrate, read_state
    from migrations.occupancy import refuse_if_in_use
    from services.backups.writer import write_backup
    from services.events import journal

    settings = load_settings()
    _log_steps(settings)
    to = SCHEMA_VERSION if to is None else to

    async def go() -> tuple[list[Step], SchemaState]:
        async with raw_database(settings) as db:
            steps = await migrate(db, writer=__version__, to=to, dry_run=True, take_over=take_over)
            state = await read_state(db)
            if dry_run or not steps:
                return steps, state
            if not force:  # before the backup: refused, it would only have cost the time it takes
                journal.refuse_if_live(settings.audit_journal_dir)  # a server here that has not beaten yet
                await refuse_if_in_use(db, f"migrating to schema version {to}")
            if state.interrupted:  # its data is half-migrated: the backup taken before that step is the one to keep
                errors.print("a step did not finish: finishing it without a new backup (the one taken before it stays)")
            elif not no_backup:
                destination = settings.backups / f"pre-migrate-{state.version}-to-{to}-{_stamp()}"
                manifest = await write_backup(db, destination, graphlake_version=__version__,
                                              referenced_mounts=list(settings.mounts))
                errors.print(f"backed up {manifest.documents} documents to {destination}")
            return await migrate(db, writer=__version__, to=to, take_over=take_over, force=force,
                                 on_step=lambda step: errors.print(f"done: {step}")), state

    try:
        steps, state = run(go())
    except ValueError as error:  # a version this code does not know (a newer database, or --to out of range)
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    if state.version is None:  # nothing was recorded, so no version is claimed: the first start records its own
        errors.print("the database is empty: nothing to migrate; the first start of a Graphlake records its schema "
                     "version in it")
        return
    if dry_run:
        for step in steps:
            console.print(f"would run: {step}")
    errors.print(f"{'would take' if dry_run else 'took'} {len(steps)} step(s); "
                 f"the database {'would be' if dry_run else 'is'} at schema version {to}")


@db_app.command("migrate")
def db_migrate(
    to: Annotated[int | None, typer.Option("--to", help="Target schema version; default: this Graphlake's.",
                                           show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list the steps.")] = False,
    no_backup: Annotated[bool, typer.Option("--no-backup", help="Skip the backup taken first.")] = False,
    take_over: Annotated[bool, typer.Option("--take-over", help="Finish a step another host started and left "
                                            "(only when that runner is surely gone).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run even while servers or backups use the database (a "
                                        "server left running writes shapes the new version may not read; a backup "
                                        "under way fails).")] = False,
) -> None:
    """Bring the database to this Graphlake's schema version (backing it up first into GRAPHLAKE_BACKUP_DIR).
    Run it again after an interruption: it finishes the step that was under way. Refused while a server
    or a backup uses the database, when there is anything to do."""
    _migrate(to, dry_run, no_backup, take_over, force)


@db_app.command("downgrade")
def db_downgrade(
    to: Annotated[int, typer.Option("--to", help="The schema version to go back to.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list the steps.")] = False,
    no_backup: Annotated[bool, typer.Option("--no-backup", help="Skip the backup taken first.")] = False,
    take_over: Annotated[bool, typer.Option("--take-over", help="Finish a step another host started and left.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run even while servers or backups use the database (a "
                                        "server left running writes shapes the new version may not read; a backup "
                                        "under way fails).")] = False,
) -> None:
    """Take the database back to an earlier schema version, so an earlier Graphlake can serve it. Run it
    with the newer Graphlake, which knows the way back. Refused while a server or a backup uses the database."""
    _migrate(to, dry_run, no_backup, take_over, force)


@backup_app.command("create")
def backup(
    destination: Annotated[Path | None, typer.Argument(help="A new directory; default: "
                                                        "GRAPHLAKE_BACKUP_DIR/graphlake-<time>.")] = None,
    with_payloads: Annotated[bool, typer.Option("--with-payloads", help="Copy the local mounts' objects too "
                                                "(S3 mounts' objects are referenced, not copied).")] = False,
    with_s3_payloads: Annotated[bool, typer.Option("--with-s3-payloads", help="Copy the objects of the files on "
                                                   "the other (S3) mounts too.")] = False,
) -> None:
    """Write a backup: every collection, the schema version and a manifest of counts and SHA-256s."""
    from documents.event import Event as EventDocument
    from graphlake.database_access import raw_database
    from graphlake.mounts import local_roots, opened_stores
    from services.backups.writer import write_backup
    from services.events.journal import store_left

    settings = load_settings(existing_lake=True)
    if destination is not None and not destination.parent.is_dir():
        # Made, a backup aimed at a disk that is not mounted (/mnt/backups/monday) filled the root file system.
        errors.print(f"[red]error:[/red] no folder {escape(str(destination.parent))} to back up into (is its disk "
                     "mounted?): make it first")
        raise typer.Exit(1)
    destination = destination or settings.backups / f"graphlake-{_stamp()}"
    roots = local_roots(settings) if with_payloads else {}
    remote = [m for m in settings.mounts if m not in local_roots(settings)] if with_s3_payloads else []

    async def go() -> Manifest:
        async with raw_database(settings) as db, opened_stores(settings, remote) as stores:
            # What a killed server journaled goes in too.
            await store_left(settings.audit_journal_dir, db[EventDocument.Settings.name])
            return await write_backup(db, destination, graphlake_version=__version__, local_roots=roots, stores=stores,
                                      referenced_mounts=[m for m in settings.mounts if m not in roots and m not in stores],
                                      progress=lambda line: errors.print(f"  {line}"))

    manifest = run(go())
    errors.print(f"backed up {manifest.documents} documents"
                 + (f" and {len(manifest.payloads)} objects ({manifest.payload_bytes} bytes)"
                    if with_payloads or with_s3_payloads else "") + f" to {destination}")
    console.print(str(destination))


@backup_app.command("verify")
def backup_verify(source: Annotated[Path, typer.Argument(help="The backup directory.")]) -> None:
    """Check every file of a backup against its manifest; exits 1 naming each difference."""
    from services.backups.layout import verify_backup

    manifest, problems = run(verify_backup(source))
    if problems:
        for problem in problems:
            errors.print(f"[red]differs:[/red] {escape(problem)}")
        raise typer.Exit(1)
    print_rows(("collection", "documents", "bytes"),
               [(c.name, str(c.documents), str(c.bytes)) for c in manifest.collections])
    _warn_missing_payloads(manifest)
    errors.print(f"backup ok: schema version {manifest.schema_version}, {manifest.documents} documents, "
                 f"{len(manifest.payloads)} objects, taken {manifest.started_at} by Graphlake {manifest.graphlake_version}")


def _warn_missing_payloads(manifest: Manifest) -> None:
    """The stored files the backup names and lacks (services/backups/missing.py): whole all the same."""
    for missing in manifest.missing_payloads:
        errors.print(f"[yellow]warning:[/yellow] {escape(missing.describe())}")
    if manifest.missing_payloads:
        errors.print(f"[yellow]warning:[/yellow] {len(manifest.missing_payloads)} stored file(s) the backup names are "
                     "not in it: deleted from the lake while the backup ran, or missing from their mount already (which "
                     "of the two cannot be told from the backup). Restored, they have no bytes behind them.")


def restore(
    source: Annotated[Path, typer.Argument(help="A backup directory.")],
    replace: Annotated[bool, typer.Option("--replace", help="Drop what the lake holds first (documents; objects "
                                          "on mounts stay, replaced where the backup has the same key).")] = False,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Leave an older backup at its schema version.")] = False,
    replace_newer: Annotated[bool, typer.Option("--replace-newer", help="With --replace: also over a lake a newer "
                                                "Graphlake wrote (the collections this one does not know stay).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Restore even while servers or backups use the database "
                                        "(they go on with what they read before; a server journaling on this "
                                        "machine is refused all the same).")] = False,
) -> None:
    """Restore a backup into an empty lake (or, with --replace, over one), then migrate it if it is older.
    Stop the servers first: refused while one (or a backup) uses the database."""
    from graphlake.database_access import raw_database
    from graphlake.mounts import local_roots, opened_stores
    from migrations import SCHEMA_VERSION, migrate
    from services.backups.reader import files_on_unknown_mounts, missing_local_files, restore_backup
    from services.errors import Conflict
    from services.events import journal
    from services.mount_owners import others, owner_readers

    settings = load_settings()
    _log_steps(settings)

    aside: list[Path | None] = [None]

    def set_journal_aside() -> None:
        # AUDIT events a stopped server of the replaced lake left unstored are that lake's: moved
        # while the database is marked as being restored, before any process could replay them into it.
        aside[0] = journal.set_aside(settings.audit_journal_dir, "replaced")

    missing: dict[str, int] = {}
    unknown: dict[str, int] = {}
    foreign: dict[str, str] = {}

    async def go() -> Manifest:
        journal.refuse_if_live(settings.audit_journal_dir)  # a server journaling here would mix its events in
        # The remote mounts' stores, opened: the restore writes a backup's objects into them through
        # them. A local mount's store is never opened: that makes its root and marker file, and a drill
        # on a host where the mount is read-only failed, or where it is not mounted made an empty
        # directory in its place. The restore writes a local mount's objects itself, and reads its
        # owner file by path (owner_readers), making nothing.
        roots = local_roots(settings)
        async with raw_database(settings) as db, \
                opened_stores(settings, [name for name in settings.mounts if name not in roots]) as remote:
            stores = {**owner_readers(roots), **remote}
            try:
                manifest = await restore_backup(db, source, local_roots=roots, stores=remote,
                                                replace=replace, replace_newer=replace_newer, force=force,
                                                progress=lambda line: errors.print(f"  {line}"), replacing=set_journal_aside)
            except Conflict as refused:  # the service names its `replace`; the command's user needs the flag
                field = refused.extensions.get("field")
                flag = {"replace": "--replace drops it first", "replace_newer": "--replace-newer does so"}.get(field)
                if flag is None:
                    raise
                raise Conflict(f"{str(refused).removeprefix(f'{field}: ')} ({flag})") from None
            if manifest.schema_version < SCHEMA_VERSION and not no_migrate:
                await migrate(db, writer=__version__, force=force,
                              on_step=lambda step: errors.print(f"migrated: {step}"))
            missing.update(await missing_local_files(db, roots))
            unknown.update(await files_on_unknown_mounts(db, settings.mounts))
            foreign.update({name: owner for name, owner in (await others(db, stores)).items() if isinstance(owner, str)})
            return manifest

    manifest = run(go())
    errors.print(f"restored {manifest.documents} documents and {len(manifest.payloads)} objects "
                 f"from {source}")
    _warn_missing_payloads(manifest)
    for mount, count in missing.items():
        # A backup holds a local mount's files only with --with-payloads: without them, say so now
        # rather than at each download that fails.
        errors.print(f"[yellow]warning:[/yellow] {count} stored files of mount {mount} are not in "
                     f"{local_roots(settings)[mount]}: a backup holds them only with --with-payloads. Copy them "
                     "there from the old lake's root of that mount, or their downloads fail.")
    for mount, count in unknown.items():
        errors.print(f"[yellow]warning:[/yellow] {count} stored files are on mount {mount}, which this configuration "
                     f"does not have: configure it (GRAPHLAKE_MOUNTS__{mount.upper()}__...), or they have no download URL.")
    if aside[0]:
        errors.print(f"the replaced lake's unstored audit journal was moved to {aside[0]}")
    for mount, owner in foreign.items():
        errors.print(f"[yellow]note:[/yellow] mount {mount} belongs to lake {owner}, not to this restored one: it reads "
                     "the files there and never writes, deletes or sets aside any (a copy, say, beside that lake). If "
                     f"this restore replaces that lake for good, take the mount over: graphlake mounts adopt {mount}")


@mounts_app.command("list")
def mounts_list() -> None:
    """Each mount, the lake that owns it, and whether that is this lake."""
    from graphlake.database_access import raw_database
    from graphlake.mounts import local_roots, opened_stores
    from services.mount_owners import lake_id, owner_readers, owners
    from storage import StoreUnavailable

    settings = load_settings(existing_lake=True)

    async def go() -> tuple[str, list[tuple[str, str, str, str]]]:
        # A local mount's owner is read by path, its store never opened: that makes its root (see restore).
        roots = local_roots(settings)
        async with raw_database(settings) as db, \
                opened_stores(settings, [name for name in settings.mounts if name not in roots]) as remote:
            readers = {**owner_readers(roots), **remote}
            stores = {name: readers[name] for name in settings.mounts}
            lake = await lake_id(db)
            rows = []
            for name, owner in (await owners(stores)).items():
                if isinstance(owner, StoreUnavailable):
                    rows.append((name, stores[name].backend, "?", f"cannot be asked: {owner}"))
                    continue
                said = "this lake" if owner == lake else ("none yet (the next server start claims it)" if owner is None
                                                          else "another lake: read only here")
                rows.append((name, stores[name].backend, owner or "-", said))
            return lake, rows

    lake, rows = run(go())
    errors.print(f"this lake: {lake} (database {settings.database})")
    print_rows(("mount", "backend", "owner", "which is"), rows)


@mounts_app.command("adopt")
def mounts_adopt(
    name: Annotated[str, typer.Argument(help="The mount to take over, as GRAPHLAKE_MOUNTS names it.")],
    yes: Annotated[bool, typer.Option("--yes", help="Take it over without asking.")] = False,
) -> None:
    """Make this lake the owner of a mount another lake owns: after restoring a lake that is lost
    for good, so the restored one deletes, sweeps and uploads there again. Never on a copy whose
    original still runs: this lake would then delete the files the original wrote after the backup.
    Restart the servers after it, or wait for their next maintenance round."""
    from graphlake.database_access import raw_database
    from graphlake.mounts import opened_stores
    from graphlake.settings import LocalMountSettings
    from services.errors import Unavailable
    from services.mount_owners import adopt, lake_id, read_owner
    from storage import StoreUnavailable

    settings = load_settings(existing_lake=True)
    if name not in settings.mounts:
        errors.print(f"[red]error:[/red] NAME: no mount named {escape(repr(name))} (have: {', '.join(sorted(settings.mounts))})")
        raise typer.Exit(2)
    mount = settings.mounts[name]
    # Opening a local store makes its folder: where a mount's file system is not mounted (yet), the
    # owner file would land on the disk below, and the real mount, once mounted, would have none.
    # Only the default folder under the data dir is the lake's own to make.
    if (isinstance(mount, LocalMountSettings) and mount.path is not None and not mount.path.is_dir()
            and mount.path != settings.data_dir / "objects" / name):
        errors.print(f"[red]error:[/red] mount {escape(name)}: {escape(str(mount.path))} is not a folder: mount its file "
                     "system there first; adopting writes the owner file into it (NOT_FOUND)")
        raise typer.Exit(1)

    async def go() -> tuple[str, str | None]:
        async with raw_database(settings) as db, opened_stores(settings, [name]) as stores:
            try:
                lake, owner = await lake_id(db), await read_owner(stores[name])
                if owner not in (None, lake) and not yes and not typer.confirm(
                        f"mount {name} belongs to lake {owner}. Make it this lake's ({lake})? Only if that lake is "
                        "gone for good: this one will delete there what it does not know of."):
                    raise typer.Exit(1)
                return lake, await adopt(db, stores[name])
            except StoreUnavailable as error:  # either backend's, reading or writing the owner file
                raise Unavailable(str(error)) from None

    lake, previous = run(go())
    errors.print(f"mount {name} belongs to this lake ({lake}) now"
                 + (f"; it belonged to lake {previous}" if previous not in (None, lake) else ""))
