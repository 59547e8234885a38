"""Alert notifiers: email over SMTP and signed webhooks, run after the write, never blocking it.

Each delivery is retried with exponential backoff; one that still fails is logged, and recorded as
an ALERT_DELIVERY_FAILED event, which never alerts itself (no loops).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

import aiosmtplib
import httpx
import orjson
from pydantic import SecretStr
from pydantic.alias_generators import to_camel

from documents.clock import utcnow
from documents.event import ALERT_DELIVERY_FAILED, LEVELS, Event, new_event_id
from documents.json_value import StoredJson
from services.events.feed import FeedWriter
from services.node_ids import NodeType, encode_id
from storage import retries

log = logging.getLogger("graphlake.alerts")

SIGNATURE_HEADER = "X-Graphlake-Signature"
_NAMES = {number: name for name, number in LEVELS.items()}


class AlertSettings(Protocol):
    """What alert delivery reads from the server's settings (graphlake/settings.py says what each means)."""

    alert_smtp_host: str | None
    alert_smtp_port: int
    alert_smtp_username: str | None
    alert_smtp_password: SecretStr | None
    alert_smtp_starttls: bool
    alert_email_from: str
    alert_email_to: list[str]
    alert_webhooks: list[str]
    alert_webhook_secret: SecretStr | None


def alert_body(events: list[Event]) -> dict:
    """The alerts as emailed and POSTed: the keys the API uses (`source.nodeId`), so a receiver reads
    an alert as it would the event."""
    return {"alerts": [{
        # The id the API knows (event(id:), `after`): a receiver looks the event up, or resumes from it.
        "id": encode_id(NodeType.EVENT, e.id), "eventType": e.event_type, "level": _NAMES.get(e.level, str(e.level)), "message": e.message,
        "timestamp": e.timestamp.isoformat(), "source": {to_camel(k): v for k, v in e.source.model_dump().items()},
        "data": e.data.decode(),
        "traceId": e.trace_id,
    } for e in events]}


def webhook_named(n: int, url: str) -> str:
    """The `n`th webhook as a failure names it: its place in GRAPHLAKE_ALERT_WEBHOOKS and its scheme
    and host. A webhook's path and query are often its credential (Slack's, Teams' and Discord's
    URLs, a `?key=`), and a failure is an event any reader (a VIEWER, a guest) may read."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:  # an IPv6 address, bracketed again as a URL writes it
        host = f"[{host}]"
    return f"webhook {n + 1} ({parts.scheme}://{host}{f':{parts.port}' if parts.port else ''})"


def signature(secret: bytes, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`: what receivers recompute to trust a webhook."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


async def _with_retries(what: str, send: Callable[[], Awaitable[None]]) -> str | None:
    """None once sent, else the last error (storage/retries.py says how often and how long apart)."""
    try:
        await retries.alert_deliveries().on(Exception)(send)  # any failure to deliver is retried, then reported
        return None
    except Exception as error:
        log.warning("alert delivery to %s failed after %d attempts: %s", what, retries.ALERT_ATTEMPTS, error)
        return str(error) if isinstance(error, WebhookFailed) else f"{type(error).__name__}: {error}"


async def _email(events: list[Event], settings: AlertSettings) -> None:
    message = EmailMessage()
    top = max(events, key=lambda e: e.level)
    message["Subject"] = f"[graphlake] {len(events)} alert(s): {top.event_type} {top.message or ''}".strip()[:200]
    message["From"] = settings.alert_email_from
    message["To"] = ", ".join(settings.alert_email_to)
    message.set_content(orjson.dumps(alert_body(events), option=orjson.OPT_INDENT_2).decode())
    await aiosmtplib.send(
        message, hostname=settings.alert_smtp_host, port=settings.alert_smtp_port,
        username=settings.alert_smtp_username,
        password=settings.alert_smtp_password.get_secret_value() if settings.alert_smtp_password else None,
        start_tls=settings.alert_smtp_starttls, timeout=10,
    )


async def _webhook(url: str, body: bytes, settings: AlertSettings) -> None:
    headers = {"Content-Type": "application/json"}
    if settings.alert_webhook_secret:
        headers[SIGNATURE_HEADER] = signature(settings.alert_webhook_secret.get_secret_value().encode(), body)
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            response = await http.post(url, content=body, headers=headers)
        except httpx.InvalidURL:
            raise WebhookFailed("not a URL httpx can send to") from None
        except httpx.RequestError as error:  # its text names no URL; its class says what failed
            raise WebhookFailed(f"{type(error).__name__}: {error}") from None
    if response.is_error:  # httpx's own error would quote the whole URL
        raise WebhookFailed(f"answered HTTP {response.status_code}")


class WebhookFailed(Exception):
    """A webhook not delivered, said without its URL (webhook_named)."""


async def notify(events: list[Event], writer: FeedWriter, settings: AlertSettings) -> None:
    events = [e for e in events if e.event_type != ALERT_DELIVERY_FAILED]
    if not events:
        return
    deliveries: dict[str, Callable[[], Awaitable[None]]] = {}
    if settings.alert_smtp_host and settings.alert_email_to:
        deliveries[f"smtp://{settings.alert_smtp_host}"] = lambda: _email(events, settings)
    body = orjson.dumps(alert_body(events))
    for n, url in enumerate(settings.alert_webhooks):
        deliveries[webhook_named(n, url)] = lambda url=url: _webhook(url, body, settings)
    results = await asyncio.gather(*(_with_retries(what, send) for what, send in deliveries.items()))
    failures = [
        Event(id=new_event_id(), event_type=ALERT_DELIVERY_FAILED, level=LEVELS["WARNING"],
              message=f"alert delivery to {what} failed", timestamp=utcnow(),
              data=StoredJson.encode({"target": what, "error": error,
                                      "events": [encode_id(NodeType.EVENT, e.id) for e in events]}))
        for what, error in zip(deliveries, results, strict=True) if error
    ]
    if failures:
        await writer.write(failures)
