"""`graphlake privacy`: export, anonymize or erase everything that names a user (services/privacy)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape  # a message's [brackets] are text, not styles

from graphlake.cli_support import console, errors, load_settings, run

if TYPE_CHECKING:
    from services.privacy.requests import Erasure, ErasurePlan

privacy_app = typer.Typer(help="Privacy requests: export, anonymize or erase what names a user.", no_args_is_help=True)
User = Annotated[str, typer.Argument(help="The user's id (the userId their tokens carry).")]


def register(app: typer.Typer) -> None:
    app.add_typer(privacy_app, name="privacy")


@privacy_app.command("export")
def export(
    user: User,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write; default: "
                                                "privacy-<user>.json (.zip with --with-payloads) here.")] = None,
    with_payloads: Annotated[bool, typer.Option("--with-payloads", help="A zip of the document and the user's files.")] = False,
) -> None:
    """Write everything that names the user (what they own, made, verified or logged, their tokens,
    the audit entries of what they did) as one JSON document, with their files in a zip when asked."""
    from graphlake.runtime import open_state
    from services.errors import BadUserInput
    from services.events import audit
    from services.privacy.export import write_export
    from services.privacy.places import pseudonym, pseudonym_key
    from services.privacy.requests import check_user

    settings = load_settings(existing_lake=True)
    try:
        user = check_user(user)
    except BadUserInput as error:  # one line, as every command says what is wrong (run() does for the rest)
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    target = output or Path(f"privacy-{re.sub(r'[^A-Za-z0-9._-]+', '_', user)}.{'zip' if with_payloads else 'json'}")

    async def go() -> dict[str, int]:
        async with open_state(settings, mounts=with_payloads) as state:
            counts = await write_export(state.db, user, target, stores=state.stores if with_payloads else None,
                                        on_missing=lambda what: errors.print(f"[yellow]warning:[/yellow] {escape(what)}"))
            subject = pseudonym(user, await pseudonym_key(state.db))  # the audit trail never names the user
            await audit.record_command(state.feed, settings, "privacy export", subject=subject,
                                       documents=str(sum(v for k, v in counts.items() if k not in ("files", "filesMissing"))))
            return counts

    counts = run(go())
    for place, count in sorted(counts.items()):
        errors.print(f"  {place}: {count}")
    console.print(str(target))


@privacy_app.command("anonymize")
def anonymize(user: User) -> None:
    """Replace the user's id with a stable pseudonym everywhere it names them; nothing is deleted."""
    from graphlake.runtime import open_state
    from services.events import audit
    from services.privacy.places import pseudonym_key
    from services.privacy.requests import anonymize_user

    settings = load_settings(existing_lake=True)

    async def go() -> tuple[str, dict[str, int]]:
        async with open_state(settings, mounts=False) as state:
            alias, changed = await anonymize_user(state.db, user, await pseudonym_key(state.db))
            await audit.record_command(state.feed, settings, "privacy anonymize", subject=alias,
                                       changed=str(sum(changed.values())))
            return alias, changed

    alias, changed = run(go())
    for place, count in sorted(changed.items()):
        errors.print(f"  {place}: {count} document(s)")
    errors.print(f"the user is now {alias}")


def _report(erasure: Erasure) -> None:
    errors.print(f"deleted {len(erasure.deleted_assets)} asset(s) and {erasure.tokens_deleted} token(s); "
                 f"the user is now {erasure.pseudonym}")
    if erasure.uploads_cleared:
        errors.print(f"cleared what {erasure.uploads_cleared} upload session(s) recorded of their deleted files")
    if erasure.events_cleared:
        errors.print(f"cleared the file size {erasure.events_cleared} ASSET_STATUS event(s) recorded")
    for asset, why in erasure.kept_assets.items():
        errors.print(f"[yellow]kept[/yellow] asset {asset}: {escape(why)}")
    for version in erasure.versions_holding:
        errors.print(f"[yellow]dataset version {version} holds the user's data[/yellow] (left whole, now under the pseudonym)")


@privacy_app.command("erase")
def erase(
    user: User,
    confirm: Annotated[bool, typer.Option("--confirm", help="Do it (without: say what it would touch).")] = False,
) -> None:
    """Delete the user's own assets (those nothing holds; the rest are listed) and tokens, and replace
    their identity everywhere else with a stable pseudonym. Dataset versions holding their data are
    listed and left whole."""
    from graphlake.runtime import open_state
    from services.events import audit
    from services.privacy.places import pseudonym_key
    from services.privacy.requests import Erasure, erase_user, erasure_plan

    settings = load_settings(existing_lake=True)

    async def go() -> Erasure | ErasurePlan:
        async with open_state(settings) as state:
            if not confirm:
                return await erasure_plan(state.db, user)
            erasure = await erase_user(state.db, user, await pseudonym_key(state.db), state.stores)
            await audit.record_command(state.feed, settings, "privacy erase", erasure.deleted_assets,
                                       subject=erasure.pseudonym, tokensDeleted=str(erasure.tokens_deleted),
                                       assetsKept=str(len(erasure.kept_assets)))
            return erasure

    outcome = run(go())
    if isinstance(outcome, Erasure):
        _report(outcome)
        return
    _plan(outcome)
    errors.print("nothing changed: pass --confirm to erase the user")


def _plan(plan: ErasurePlan) -> None:
    """What an erase would touch, as _report says what it did."""
    errors.print(f"would delete {len(plan.assets_deleted)} asset(s) and {plan.tokens} token(s)")
    for asset in plan.assets_deleted:
        errors.print(f"  delete asset {asset}")
    for asset, why in plan.assets_kept.items():
        errors.print(f"[yellow]  keep[/yellow] asset {asset}: {escape(why)}")
    if plan.contents_cleared:
        errors.print(f"  clear the name, description and content of {plan.contents_cleared} asset(s) of theirs deleted before")
    if plan.uploads_cleared:
        errors.print(f"  clear what {plan.uploads_cleared} upload session(s) recorded of their deleted files (size, "
                     "SHA-256, path), closing those still open")
    if plan.events_cleared:
        errors.print(f"  clear the file size {plan.events_cleared} ASSET_STATUS event(s) of their deleted files recorded")
    for collection, count in plan.anonymized.items():
        errors.print(f"  replace the user's id with their pseudonym in {count} {collection} document(s)")
    for version in plan.versions_holding:
        errors.print(f"[yellow]dataset version {version} holds the user's data[/yellow] (it would be left whole)")
