"""Commands that use a running lake through its API, as the Python client does: store a value or a
text, get an asset, log an event, list events or follow them live. For shell scripts and instrument hooks, where
`graphlake upload` and `download` move files. Each prints what a script reads next (an ID, JSON)
on stdout, and says what went wrong on stderr (cli_support.client_run)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from graphlake.cli_support import ServerUrl, Token, client_run, errors, print_rows, server_url

store_app = typer.Typer(help="Store a JSON value or a text in a running lake; prints its ID.", no_args_is_help=True)

Labels = Annotated[list[str] | None, typer.Option("--label", help="A label (repeatable).")]
Metadata = Annotated[str | None, typer.Option(help='Metadata as a JSON object, e.g. \'{"plate": 7}\'.')]
Collection = Annotated[str | None, typer.Option(help="Put it in this collection (made if missing).")]
Aliases = Annotated[list[str] | None, typer.Option("--alias", help="An alias to give it (repeatable).")]
Node = Annotated[str | None, typer.Option(help="The instrument or node it comes from (source/owner nodeId).")]
Owner = Annotated[str | None, typer.Option(help=(
    'Who or what produced it (an event: its source), as a JSON object of ownership fields, e.g. '
    '\'{"userId": "ann", "workcellId": "wc-1"}\' (--node sets nodeId).'))]


def owner_of(owner: str | None, node: str | None) -> dict[str, Any] | None:
    """--owner's object with --node's nodeId; None when neither is given."""
    fields = _json(owner, "--owner") if owner is not None else {}
    if not isinstance(fields, dict):
        errors.print('[red]error:[/red] --owner must be a JSON object, e.g. \'{"userId": "ann"}\'')
        raise typer.Exit(2)
    if node:
        fields["nodeId"] = node
    return fields or None


def _json(text: str, what: str) -> Any:
    """`text` as JSON (`-`: read stdin), or exit 2 naming `what`: a shell quoting slip is the usual cause."""
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as error:
        errors.print(f"[red]error:[/red] {what} is not JSON: {error}")
        raise typer.Exit(2) from None


def _fields(labels: list[str] | None, metadata: str | None, aliases: list[str] | None, node: str | None,
            owner: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"labels": labels or None, "aliases": aliases or None, "owner": owner_of(owner, node)}
    if metadata is not None:
        fields["metadata"] = _json(metadata, "--metadata")
    return {k: v for k, v in fields.items() if v is not None}


@store_app.command("value")
def store_value(
    name: Annotated[str, typer.Argument(help="The asset's name.")],
    value: Annotated[str, typer.Argument(help="Any JSON (quote it for the shell), or - to read it from stdin.")],
    labels: Labels = None, metadata: Metadata = None, collection: Collection = None, aliases: Aliases = None,
    node: Node = None, owner: Owner = None, url: ServerUrl = None, token: Token = None,
) -> None:
    """Store a JSON value as a VALUE asset; prints its ID."""
    from graphlake_client import Client

    parsed, fields = _json(value, "the value"), _fields(labels, metadata, aliases, node, owner)

    async def run() -> dict:
        async with Client(server_url(url), token) as lake:
            return await lake.store_value(parsed, name=name, collection=collection, **fields)

    sys.stdout.write(f"{client_run(run(), token=token)['id']}\n")  # type: ignore[index]


@store_app.command("text")
def store_text(
    name: Annotated[str, typer.Argument(help="The asset's name.")],
    text: Annotated[str, typer.Argument(help="The text, or - to read it from stdin.")],
    media_type: Annotated[str | None, typer.Option(help="Its media type (default text/plain).")] = None,
    labels: Labels = None, metadata: Metadata = None, collection: Collection = None, aliases: Aliases = None,
    node: Node = None, owner: Owner = None, url: ServerUrl = None, token: Token = None,
) -> None:
    """Store a text as a TEXT asset; prints its ID."""
    from graphlake_client import Client

    body, fields = sys.stdin.read() if text == "-" else text, _fields(labels, metadata, aliases, node, owner)

    async def run() -> dict:
        async with Client(server_url(url), token) as lake:
            return await lake.store_text(body, name=name, collection=collection, media_type=media_type, **fields)

    sys.stdout.write(f"{client_run(run(), token=token)['id']}\n")  # type: ignore[index]


def get(
    asset: Annotated[str, typer.Argument(help="Asset ID or alias.")],
    url: ServerUrl = None, token: Token = None,
) -> None:
    """Print an asset as JSON: its details, and its value, text or download URL."""
    from graphlake_client import Client

    async def run() -> dict:
        async with Client(server_url(url), token) as lake:
            return dict(await lake.get_asset(asset))

    sys.stdout.write(json.dumps(client_run(run(), token=token), indent=2, ensure_ascii=False) + "\n")


def log(
    event_type: Annotated[str, typer.Argument(help="What happened, e.g. NODE_START.")],
    message: Annotated[str | None, typer.Argument(help="A human-readable message.")] = None,
    level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR or CRITICAL.")] = "INFO",
    data: Annotated[str | None, typer.Option(help="JSON to attach, queryable by path.")] = None,
    key: Annotated[str | None, typer.Option(help=(
        "Your own name for the event (a UUID, say): run again with the same key, the command stores nothing new and "
        "prints the same ID, so a hook may simply retry; the same key with other content is refused."))] = None,
    node: Node = None, owner: Owner = None, url: ServerUrl = None, token: Token = None,
) -> None:
    """Log an event; prints its ID."""
    from graphlake_client import Client

    event: dict[str, Any] = {"eventType": event_type, "message": message, "level": level.upper(), "key": key}
    if data is not None:
        event["data"] = _json(data, "--data")
    if source := owner_of(owner, node):
        event["source"] = source

    async def run() -> list[str]:
        async with Client(server_url(url), token) as lake:
            return await lake.log_events([event])  # type: ignore[list-item]

    sys.stdout.write(f"{client_run(run(), token=token)[0]}\n")  # type: ignore[index]


def events_list(
    types: Annotated[list[str] | None, typer.Option("--type", help="Only this event type (repeatable).")] = None,
    level: Annotated[str | None, typer.Option(help="Only this level and above.")] = None,
    node: Node = None,
    lake_own: Annotated[bool, typer.Option("--lake", help="The lake's own events (audit trail, asset status, "
                                                           "backups) instead of what clients logged.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, as the API gives them.")] = False,
    url: ServerUrl = None, token: Token = None,
) -> None:
    """List the newest events (what clients logged, unless --lake), newest first."""
    from graphlake_client import Client
    from graphlake_client.assets import PAGE_SIZE

    async def run() -> list[dict]:
        found: list[dict] = []
        async with Client(server_url(url), token) as lake:
            pages = lake.query_events(event_types=types, min_level=level.upper() if level else None,  # type: ignore[arg-type]
                                      source={"nodeId": node} if node else None, origin="LAKE" if lake_own else "CLIENT",
                                      page_size=min(limit, PAGE_SIZE))  # within any server's maximum page
            async for page in pages:
                found += page.events[:limit - len(found)]
                if len(found) >= limit:
                    break
        return found

    events = client_run(run(), token=token)
    if as_json:
        for event in events:  # type: ignore[union-attr]
            sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
        return
    print_rows(("id", "timestamp", "level", "type", "node", "message"),
               [(e["id"], e["timestamp"], e["level"], e["eventType"], e["source"].get("nodeId") or "", e["message"] or "")
                for e in events])  # type: ignore[union-attr]


def events_follow(
    types: Annotated[list[str] | None, typer.Option("--type", help="Only this event type (repeatable).")] = None,
    # --level as `events list` names the same filter; --min-level, its first name, still works.
    level: Annotated[str | None, typer.Option("--level", "--min-level", help="Only this level and above.")] = None,
    node: Node = None,
    lake_own: Annotated[bool, typer.Option("--lake", help="The lake's own events (audit trail, asset status, "
                                                           "backups) instead of what clients logged.")] = False,
    after: Annotated[str | None, typer.Option(help="First the events received since this one (its ID), then live.")] = None,
    url: ServerUrl = None, token: Token = None,
) -> None:
    """Print events as they are logged, one JSON object per line, until Ctrl-C (a restarting server is waited for)."""
    from graphlake_client import Client
    from graphlake_client.follow import RESTART_RETRIES

    async def run() -> None:
        async with Client(server_url(url), token, retries=RESTART_RETRIES) as lake:
            events = lake.follow_events(event_types=types, min_level=level.upper() if level else None,  # type: ignore[arg-type]
                                        source={"nodeId": node} if node else None,
                                        origin="LAKE" if lake_own else "CLIENT", after=after)
            async for event in events:
                # Flushed per line: a pipe (`| jq`, a script reading lines) sees each event as it comes.
                sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
                sys.stdout.flush()

    try:
        client_run(run(), token=token)
    except KeyboardInterrupt:  # the way it ends: asyncio.run closed the stream as it cancelled
        raise typer.Exit(130) from None


def register(app: typer.Typer, events_app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
    app.command("get")(get)
    app.command("log")(log)
    events_app.command("list")(events_list)
    events_app.command("follow")(events_follow)
