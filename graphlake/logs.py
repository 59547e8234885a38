"""Logging setup: plain or JSON lines, each carrying the id of the request that wrote it."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

try:  # the `tracing` extra's API: with it, a line written inside a traced request names its trace
    from opentelemetry.trace import get_current_span
except ImportError:  # pragma: no cover - installed without the extra
    get_current_span = None  # type: ignore[assignment]

# Set by the request-id middleware; read by the log formatters and the error masker, so an
# INTERNAL error a client sees can be found in the server log by its id.
request_id_var: ContextVar[str | None] = ContextVar("graphlake_request_id", default=None)


class _RequestIdFilter(logging.Filter):
    """The request's id, and with tracing on the trace and span the line was written in (as
    OpenTelemetry's log records carry them), so a JSON line leads to its trace and back."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get() or "-"
        if get_current_span is not None and not hasattr(record, "trace_id"):
            context = get_current_span().get_span_context()
            if context.is_valid:  # never when tracing is off: the current span is then the invalid one
                record.trace_id, record.span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
        return True


# A signed URL is a bearer capability: whoever reads the access log must not be able to replay it.
# The local mount signs with `sig`, S3 with X-Amz-Signature (and names its key and session token).
_SIGNED_PARAMS = re.compile(r"(?i)([?&](?:sig|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s\"']+")


def redact(text: str) -> str:
    """`text` with the values of signature parameters in any URL it holds replaced by REDACTED."""
    lowered = text.lower()
    return _SIGNED_PARAMS.sub(r"\1REDACTED", text) if "sig=" in lowered or "x-amz-" in lowered else text


class _RedactSignatures(logging.Filter):
    """Replaces the values of signature parameters in any logged URL with REDACTED."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: the handler reports it, as it would without this filter
            return True
        redacted = redact(message)
        if redacted is not message:
            record.msg, record.args = redacted, ()
        # An exception's text too (an HTTP error quotes the URL it was for): formatted once here, as
        # the formatters would, and kept on the record, where both formatters read it. One another
        # handler formatted first (a logger's own handler, which runs before the root's, caches it on
        # the record) is redacted as it is: the formatters print a cached text and never format anew.
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        # A stack (`stack_info=True`) holds file names and source lines, no value of a variable: a URL
        # is in it only as a line spells it out, signature and all (a script's literal). Redacted alike.
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers. A record's `fields` (a dict, given as
    `extra={"fields": ...}`) are added as keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            **getattr(record, "fields", {}),
        }
        if trace_id := getattr(record, "trace_id", None):
            entry["trace_id"], entry["span_id"] = trace_id, getattr(record, "span_id", None)
        if record.exc_info:
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:  # asked for with stack_info=True: the plain format prints it, it was dropped here
            entry["stack"] = record.stack_info
        return orjson.dumps(entry).decode()


def json_line(logger: str, message: str, fields: dict[str, object]) -> str:
    """An INFO line as JsonFormatter writes it, with `fields`, for what is written outside logging
    (the startup banner, which shows whatever the log level)."""
    record = logging.LogRecord(logger, logging.INFO, __file__, 0, message, None, None)
    record.fields = fields
    return JsonFormatter().format(record)


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    """Route the root logger (and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(_RedactSignatures())
    handler.setFormatter(
        JsonFormatter()
        if json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The driver logs every heartbeat at DEBUG; keep it quiet unless asked.
    logging.getLogger("pymongo").setLevel(max(logging.getLevelName(level), logging.INFO))
    # httpx logs each request's whole URL at INFO: an alert webhook's URL is its credential (Slack's,
    # Teams' and Discord's carry their token in the path, others a `?key=`), which the redaction of
    # signed URLs above does not know. Its failures reach the log through our own lines, without the URL.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
