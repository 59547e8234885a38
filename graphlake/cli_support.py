"""What every `graphlake` command shares: reading settings, running a coroutine with clear errors, output.

Only what every command needs is imported at the top, here and in the cli modules: a server-side
command imports the server's stack (Beanie, the models, the services) in its body, and a client-side
one the Python client, so `graphlake --help` or `graphlake upload` does not spend seconds importing
what it never uses (tests/unit/test_cli_imports.py holds that).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape  # a message's [brackets] are text, not styles
from rich.table import Table

from graphlake.logs import redact

if TYPE_CHECKING:
    import stamina.instrumentation

    from graphlake.settings import Settings

T = TypeVar("T")

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # one line a message, however long its paths: the terminal wraps it


def load_settings(*, existing_lake: bool = False) -> Settings:
    """The settings, or exit 2 saying what is wrong with them. `existing_lake`: the command works on a
    lake that must exist already (a token, a privacy request, a backup): on the embedded default, one
    run where no lake is would start a new, empty one there, and answer for it (a token no server takes).
    Imported here: pydantic-settings takes a fifth of a second to import, which a client command given
    its server (--url, GRAPHLAKE_URL) never needs."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from graphlake.settings import Settings, describe_errors

    try:
        settings = Settings()
    except ValidationError as error:
        errors.print("[red]invalid configuration[/red] (GRAPHLAKE_* variables or .env):")
        for line in describe_errors(error):
            errors.print(f"  {escape(line)}")
        raise typer.Exit(2) from None
    except SettingsError as error:  # a value pydantic-settings could not even decode (GRAPHLAKE_MOUNTS='{bad json')
        cause = f": {error.__cause__}" if error.__cause__ else ""
        errors.print(f"[red]invalid configuration[/red] (GRAPHLAKE_* variables or .env):\n{escape(str(error))}"
                     f"{escape(cause)} (JSON expected)")
        raise typer.Exit(2) from None
    if existing_lake and settings.embedded_database and not (settings.data_dir / "ferretdb" / "sqlite").is_dir():
        errors.print(f"[red]error:[/red] no lake in {escape(str(settings.data_dir.resolve()))} (GRAPHLAKE_DATA_DIR): run "
                     "this where `make run` ran, or set GRAPHLAKE_DATA_DIR to the lake's data dir")
        raise typer.Exit(1)
    return settings


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a command's coroutine, turning expected failures into one clear line and exit code 1."""
    from pymongo.errors import PyMongoError

    from graphlake.database_access import SchemaNotCurrent
    from graphlake.local_services import ServiceError
    from migrations import InUse, MigrationInProgress, SchemaMismatch
    from services.errors import GraphlakeError

    try:
        return asyncio.run(coroutine)
    except GraphlakeError as error:  # with its code, as client_run says a remote command's
        errors.print(f"[red]error:[/red] {escape(str(error))} ({error.code})")
        raise typer.Exit(1) from None
    except (ServiceError, SchemaNotCurrent, SchemaMismatch, MigrationInProgress, InUse) as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    except PyMongoError as error:
        errors.print(f"[red]error:[/red] the database cannot be reached or refused the request: {escape(str(error))}")
        raise typer.Exit(1) from None
    except OSError as error:  # a path the command cannot write or read: a folder not there, no permission, a full disk
        errors.print(f"[red]error:[/red] {escape(describe_os_error(error))}")
        raise typer.Exit(1) from None


def describe_os_error(error: OSError) -> str:
    """An OSError as one line that names the path: "No such file or directory: /x/y", not "[Errno 2] ..."."""
    what = error.strerror or str(error) or type(error).__name__
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else what


def print_rows(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table on a terminal; tab-separated lines when piped, so scripts can cut and grep."""
    if console.is_terminal:
        table = Table(*columns)
        # The first column is what a command is given back (an id for `token revoke`): never cut short.
        table.columns[0].no_wrap, table.columns[0].min_width = True, max((len(r[0]) for r in rows), default=0)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        for row in [columns, *rows]:
            sys.stdout.write("\t".join(row) + "\n")


# --- client commands: talk to a running server over HTTP

ServerUrl = Annotated[str | None, typer.Option("--url", "--server", envvar="GRAPHLAKE_URL", help=(
    "The server (GRAPHLAKE_URL); by default the one GRAPHLAKE_HOST and GRAPHLAKE_PORT configure on this machine."))]


def server_url(url: str | None) -> str:
    """The server a client command talks to: --url / GRAPHLAKE_URL, else this machine's configured one."""
    if url:
        return url
    settings = load_settings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # listening everywhere: here too
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"
Token = Annotated[str | None, typer.Option("--token", envvar="GRAPHLAKE_TOKEN", help="API token (GRAPHLAKE_TOKEN).")]


def say_retry(details: stamina.instrumentation.RetryDetails) -> None:
    """One plain line per retry the client makes (stamina's default hook logs a bare event name)."""
    errors.print(f"[yellow]retrying[/yellow] in {details.wait_for:.1f} s (retry {details.retry_num}): "
                 f"{type(details.caused_by).__name__}: {redact(str(details.caused_by))}")  # a signed URL is a capability


def client_run(coroutine: object, *, token: str | None) -> object:
    """Runs a client command's coroutine: a retry is told on stderr, a client error is one line and exit 1.
    `token` is the one the command was given, so a refusal for want of one says how to give it."""
    import httpx
    import stamina.instrumentation

    from graphlake_client import GraphlakeClientError, ServerUnreachable

    stamina.instrumentation.set_on_retry_hooks([say_retry])
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except ServerUnreachable as error:  # it never answered, retried: say where it was asked
        # A store behind a signed URL (field uploadUrl/downloadUrl) is no server GRAPHLAKE_URL names.
        hint = " (is it running? set GRAPHLAKE_URL or --url)" if error.field is None else ""
        errors.print(f"[red]error:[/red] {escape(str(error))}{hint}")
        raise typer.Exit(1) from None
    except GraphlakeClientError as error:
        if error.code == "UNAUTHENTICATED" and not token:  # the server's words are for HTTP clients: no header to send here
            errors.print("[red]error:[/red] no API token: set GRAPHLAKE_TOKEN or pass --token "
                         "(`graphlake token create NAME` makes one) (UNAUTHENTICATED)")
            raise typer.Exit(1) from None
        errors.print(f"[red]error:[/red] {escape(str(error))}" + (f" ({error.code})" if error.code else ""))
        raise typer.Exit(1) from None
    except httpx.HTTPError as error:  # the client turns network failures into the errors above; a body it cannot decode, say
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    except OSError as error:  # a path the command cannot write or read (an export's DEST): as `run` says it
        errors.print(f"[red]error:[/red] {escape(describe_os_error(error))}")
        raise typer.Exit(1) from None


