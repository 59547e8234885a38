"""Every setting Graphlake reads, in one pydantic-settings class (env prefix ``GRAPHLAKE_``).

The README's configuration table documents each field below; keep the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from documents.clock import MAX_DAYS
from graphlake import PROJECT_ROOT

MAX_HOURS = MAX_DAYS * 24
S3_MAX_URL_SECONDS = 7 * 86_400  # X-Amz-Expires: "must be less than a week", 604800 included
YEAR_SECONDS = 365 * 86_400

# The longest each duration may be, and why. The database timeout is sent as maxTimeMS, a signed 32-bit
# count of milliseconds the database refuses past 2^31-1. The others are added to now: ~3e11 s went
# past year 9999 and every upload, download URL or event of the lake failed INTERNAL.
DURATION_LIMITS = {
    "database_timeout_seconds": (2_147_483, "about 24.8 days: it is sent as maxTimeMS, a 32-bit count of milliseconds"),
    "upload_expiry_seconds": (YEAR_SECONDS, "a year"),
    "max_download_url_seconds": (YEAR_SECONDS, "a year"),
    "event_clock_skew_seconds": (86_400, "a day: a clock further ahead is set wrong, not drifting"),
    "reconcile_interval_seconds": (7 * 86_400, "a week: each round's next is set that far ahead"),
    # A timedelta (strawberry's wait for connection_init) of ~1e15 s overflowed on every WebSocket.
    "websocket_init_timeout_seconds": (3_600, "an hour"),
}


class LocalMountSettings(BaseModel):
    """A mount on the local filesystem, served by Graphlake's own signed routes."""

    backend: Literal["local"] = "local"
    path: Path | None = Field(
        default=None, description="Root directory; default: <data_dir>/objects/<mount name>."
    )
    direct_writes: bool = Field(
        default=True, description="Let clients that share this directory's filesystem write files into it "
                                  "themselves (createUpload with direct: true), at disk speed; completion still verifies them.")


class S3MountSettings(BaseModel):
    """A mount in an S3-compatible store (AWS S3, MinIO, GCS with HMAC keys)."""

    model_config = ConfigDict(allow_inf_nan=False, hide_input_in_errors=True)  # as Settings says why

    backend: Literal["s3"] = "s3"
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    public_endpoint_url: str | None = Field(
        default=None, description="Where clients reach the store, when that differs from endpoint_url (a "
                                  "container network's name, say): the signed URLs handed to clients name it.")
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "path"
    fallback: str | None = Field(
        default=None, description="Mount to use for new uploads while this one is unreachable."
    )
    timeout_seconds: float = Field(
        default=5.0, gt=0, le=3_600, description="Longest wait for a connection or for any answer from the store "
                                                  "(at most an hour: a socket's timeout of ~1e15 s overflowed); a store "
                                                  "that accepts connections but never answers fails within it.")

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        # An endpoint without a scheme (`minio:9000`, the usual slip) passed, and botocore's ValueError
        # ("Invalid endpoint") then stopped the server's start with a traceback naming no setting.
        if value is not None:
            _check_endpoint("endpoint_url", value, path=True)
        return value

    @model_validator(mode="after")
    def _public_endpoint(self) -> S3MountSettings:
        # Checked here, where the setting is named: a URL without a scheme parsed to an empty host and
        # gave broken URLs with no error. Path addressing only: the bucket stays in the path, so the
        # public address is one host whatever the bucket (storage/s3.py signs for it).
        if self.public_endpoint_url is not None:
            _check_endpoint("public_endpoint_url", self.public_endpoint_url)
            if self.addressing_style != "path":
                raise ValueError("public_endpoint_url needs addressing_style path (the bucket in the URL's path)")
        return self


MountSettings = Annotated[LocalMountSettings | S3MountSettings, Field(discriminator="backend")]


def _check_endpoint(setting: str, value: str, *, path: bool = False) -> None:
    """ValueError naming `setting` unless `value` is http(s)://host[:port] (and a path, if `path`: a
    proxy may serve S3 below one; a public address may not, path addressing puts the bucket there)."""
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0  # .port raises ValueError for one that is not a port
    except ValueError:
        port_ok = False
    if (not port_ok or parts.scheme not in ("http", "https") or not parts.hostname
            or (parts.path.strip("/") and not path) or parts.query or parts.fragment):
        raise ValueError(f"{setting} must be http(s)://host[:port], not {value!r}")


def describe_errors(error: ValidationError) -> list[str]:
    """A ValidationError of Settings as one line per error, each naming the variable that sets it
    (`GRAPHLAKE_MOUNTS__LAB__BUCKET: Field required`), without the values given (secrets among them)."""
    lines = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        where = [str(part) for part in item["loc"]]
        if len(where) > 2 and where[0] == "mounts" and where[2] in ("local", "s3"):
            del where[2]  # the discriminator pydantic adds: the mount's `backend`, not a level of the variable
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"GRAPHLAKE_{'__'.join(where).upper()}: {message}" if where else message)
    return lines


class Settings(BaseSettings):
    """Graphlake's configuration. Read from ``GRAPHLAKE_*`` environment variables and ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="GRAPHLAKE_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        # `inf` passed every `gt=0` and then broke what used it: timedelta(seconds=inf) failed every
        # WebSocket, timedelta(days=inf) every maintenance round. Unbounded means unset, where it may be.
        allow_inf_nan=False,
        # An error's input is the value refused, or for a rule across settings (or a mount missing its
        # bucket) every value given: pydantic's message quoted the S3 secret key, the signing secret
        # and the MongoDB URL's password to stderr, which a container's log keeps.
        hide_input_in_errors=True,
    )

    # --- where things live
    data_dir: Path = Field(default=Path(".graphlake"), description="Embedded database, local mount and secrets.")
    mongodb_url: SecretStr | None = Field(
        default=None, description="MongoDB URL. Unset: start the embedded FerretDB on SQLite under data_dir."
    )
    database: str = "graphlake"
    ferretdb_bin: Path | None = Field(default=None, description="FerretDB binary for the embedded database.")
    ferretdb_sync_every_commit: bool = Field(
        default=False, description="fsync the embedded database on every commit (power-cut safe, ~3x slower writes).")
    database_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Longest any one database operation of a request may take, server selection "
                                       "included (sent as maxTimeMS); past it the request gets UNAVAILABLE.")

    max_concurrent_requests: int = Field(
        default=4, description="GraphQL requests (queries and mutations, over HTTP or a WebSocket) run at once on one process; more wait their turn "
                               "(graphlake/admission.py says why).")
    request_queue_seconds: float = Field(
        default=30.0, gt=0, description="How long a request may wait for its turn; then UNAVAILABLE (HTTP 503).")

    # --- backups
    backup_dir: Path | None = Field(default=None, description="Where backups go; default: <data_dir>/backups.")
    backup_every_hours: float | None = Field(
        default=None, gt=0, le=MAX_HOURS, description="Take a backup this often (one process of a cluster takes each); unset: never.")
    backup_keep: int = Field(default=7, ge=1, description="Scheduled backups kept; older ones are removed.")
    backup_with_payloads: bool = Field(default=False, description="Scheduled backups copy the local mounts' objects too.")

    # --- privacy
    anonymize_after_days: float | None = Field(
        default=None, gt=0, le=MAX_DAYS, description="Replace people's ids by pseudonyms in what is older than this (daily).")

    # --- object storage
    mounts: dict[str, MountSettings] = Field(default_factory=dict)
    default_mount: str = "local"
    ingest_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list, description=(
        "Directories (absolute, separated by ':') whose files `ingestFiles` copies into a local mount: "
        "datasets already on the server's disk or NAS. Empty: no ingest."))

    # --- uploads and downloads
    upload_expiry_seconds: int = Field(default=86_400, description="How long an upload session stays open.")
    # A smaller upload is one PUT, which S3 refuses past 5 GiB (EntityTooLarge): a higher threshold
    # let sessions be made whose every upload failed at the store.
    multipart_threshold_bytes: int = Field(default=64 * 1_048_576, le=5 * 1024**3,
                                           description="Uploads this big or bigger use multipart (at most 5 GiB).")
    max_upload_bytes: int = Field(default=5 * 1024**4, description="Largest upload (S3's limit is 5 TiB).")
    max_download_url_seconds: int = Field(default=7 * 86_400, description="Longest lifetime of a signed download URL.")
    # Thumbnails (services/thumbnails.py): each generation holds an image decoded in memory and a CPU.
    thumbnail_concurrency: int = Field(default=2, description="Thumbnails generated at once by this process.")
    thumbnail_max_pixels: int = Field(
        default=100_000_000, description="Largest image (width x height) a thumbnail is made of: a guard "
                                         "against decompression bombs.")
    reconcile_interval_seconds: int = Field(
        default=300, description="How often expired uploads are cleaned up, crash leftovers settled and "
                                 "undeclared SHA-256s of direct writes read.")

    # --- events
    max_events_per_batch: int = Field(default=10_000, description="Events in one logEvents call.")
    event_clock_skew_seconds: int = Field(
        default=300, description="How far in the future an event's timestamp may be (clients' clocks drift; "
                                 "a later one would sit atop every newest-first list).")
    audit_journal: bool | None = Field(
        default=None, description="Write a mutation's lone AUDIT event ahead to a journal in the data dir, stored in the "
                                  "event log moments after the answer (false: stored before the answer). Unset: on for "
                                  "the embedded database (unless it syncs every commit), off for a MongoDB URL.")
    # As long as the event feed's poll (services/events/feed.py): other processes see events that late anyway.
    audit_flush_seconds: float = Field(
        default=0.05, ge=0, le=10, description="How long a journaled AUDIT event waits for others to be stored "
                                                "with it (readers on the same process never wait for it).")
    event_feed_bytes: int = Field(default=16 * 1_048_576, description="Size of the capped collection live events travel through.")
    # More than one logEvents batch: a batch reaches each subscriber's queue whole, so a queue no
    # larger dropped a subscriber that read promptly after one batch of the largest size.
    subscriber_queue_size: int = Field(default=20_000, description="Events a slow subscriber may lag before it is dropped.")
    max_event_replay: int = Field(
        default=10_000, description="Events a resuming `events(after:)` subscription replays; past them it ends with "
                                    "an error and the client resumes from the last it received.")
    event_archive_after_days: float | None = Field(default=None, gt=0, le=MAX_DAYS, description="Archive older events automatically.")
    asset_gc_after_days: float | None = Field(
        default=None, gt=0, le=MAX_DAYS,
        description="Delete assets nothing has pinned for this long, automatically (off: only `graphlake assets gc`).")
    alert_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="ERROR", description="Events at or above it (or with alert: true) fire the notifiers.")
    alert_smtp_host: str | None = None
    alert_smtp_port: int = Field(default=587, ge=1, le=65535)
    alert_smtp_username: str | None = None
    alert_smtp_password: SecretStr | None = None
    alert_smtp_starttls: bool = True
    alert_email_from: str = "graphlake@localhost"
    alert_email_to: Annotated[list[str], NoDecode] = Field(default_factory=list)
    alert_webhooks: Annotated[list[str], NoDecode] = Field(default_factory=list, description="URLs to POST alerts to.")
    alert_webhook_secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key of the signature header.")

    # --- HTTP
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = Field(default=None, description="Base URL clients use; default http://host:port.")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    signing_secret: SecretStr | None = Field(
        default=None, description="HMAC key for the signed URLs of local mounts; default: made once in data_dir."
    )

    # --- auth
    anonymous_read: bool = Field(default=False, description="Let requests without a token read (VIEWER).")
    bootstrap_admin_token: bool = Field(default=True, description="Create and print an ADMIN token on first start.")
    token_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long an accepted token is remembered; a revocation elsewhere waits this long.")

    # --- request limits
    max_query_depth: int = 15
    max_aliases: int = 30
    # Validation costs about 23 us a token on literal-heavy documents: 5000 tokens of list items took
    # about 115 ms of CPU, 2000 take under 50 (GraphiQL's introspection query has about 180 tokens).
    max_tokens: int = Field(default=2000, description="Lexical tokens in one document (parsing stops at the first over).")
    # A guest's health/me query takes about 20 tokens; 100 tokens of `me { role }` repeated validate
    # in about 8 ms, 200 in 23 ms (the field-merging check grows with the square of the repeats).
    max_tokens_unauthenticated: int = Field(
        default=100, description="Tokens in a document from a caller without a valid token (who may call only "
                                 "`health`, `me` and `__typename`): parsing stops here, long before validation.")
    max_selections: int = Field(
        default=300, description="Fields, fragment spreads and inline fragments in one document, counted before "
                                 "validation (GraphiQL's introspection query has 81, our largest operation 59).")
    max_merge_cost: int = Field(
        default=10_000, description="Work graphql-core may spend checking that same-named fields can merge "
                                    "(OverlappingFieldsCanBeMerged; 2 per comparison of two fields). It grows with "
                                    "the square of repeated fields: graphql-core's own budget of 500,000 took 2 s.")
    max_request_nodes: int = Field(
        default=100_000, description="Items one request may return at most, weighed before it runs: each connection's "
                                     "page size times those of the connections around it (resolvers/request_cost.py; "
                                     "the Python client's largest read weighs 50,100).")
    max_body_bytes: int = Field(default=16 * 1_048_576, description="Must exceed max_text_bytes: texts come in the body.")
    max_header_bytes: int = Field(default=65_536, description="A request's line and headers, together (then 431).")
    default_page_size: int = 50
    max_page_size: int = 500
    max_subscriptions_per_connection: int = 20
    introspection: bool = True
    max_batch_items: int = Field(default=10_000, description="Items in one batch mutation (datums, annotations, uploads).")
    max_query_string_chars: int = Field(
        default=1000, description="Characters in any string a query or subscription sends (search strings, patterns, ids); "
                                "cursors have their own bound, the longest the server writes.")
    max_query_list_items: int = Field(default=1000, description="Items in any list a query or subscription sends.")
    persisted_queries_max_entries: int = Field(
        default=1000, ge=0, description="Documents each process remembers for Automatic Persisted Queries (least "
                                        "recently used out first); 0 turns APQ off (PERSISTED_QUERY_NOT_SUPPORTED).")

    # --- compression
    compression: bool = Field(default=True, description="Compress /graphql answers and GraphiQL's assets (gzip, or "
                                                        "brotli when brotli-asgi is installed) for clients that accept it.")
    compression_min_bytes: int = Field(default=1024, description="Answers smaller than this go uncompressed.")

    # --- WebSockets
    websocket_init_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long a new WebSocket may wait before connection_init (either protocol).")
    max_websockets: int = Field(default=1000, description="WebSockets open at once on one process; more are closed with 1013.")
    max_websockets_awaiting_init: int = Field(
        default=100, description="WebSockets of one process that have not sent connection_init yet, which hold no "
                                 "slot of max_websockets: past it the one waiting longest is closed (4408).")
    websocket_compression: bool = Field(default=False, description=(
        "Offer permessage-deflate to WebSocket clients. Off by default, as in most GraphQL servers: every "
        "message is compressed for each socket, and a process fanning events out to 200 subscribers lagged "
        "a third less without it (README, Performance)."))
    max_websockets_per_token: int = Field(
        default=50, description="WebSockets open at once with one API token, on one process; more are closed with 4429.")

    # --- Server-Sent Events (graphql-sse): each stream also holds a WebSocket slot (graphlake/sse.py)
    sse_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="How often an SSE stream sends a comment while it has nothing to say, so "
                                        "proxies do not close an idle stream.")

    # --- stored payload sizes
    max_value_bytes: int = Field(default=1_048_576, description="JSON of one storeValue.")
    max_metadata_bytes: int = Field(default=1_048_576, description=(
        "JSON of one metadata (an asset's, a datum's, a collection's, an upload's)."))
    max_event_data_bytes: int = Field(default=1_048_576, description="JSON of one event's data.")
    max_text_bytes: int = Field(default=10 * 1_048_576, description="UTF-8 bytes of one storeText.")

    # --- logs
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = False

    # --- observability (README, Observability)
    metrics: Literal["off", "loopback", "token"] = Field(
        default="loopback", description="GET /metrics: off (not served, nothing recorded), loopback (clients on "
                                        "this machine only) or token (an ADMIN token, or metrics_token).")
    metrics_token: SecretStr | None = Field(
        default=None, description="A bearer token that may read /metrics (in token mode) and nothing else.")
    # Graphlake's own clients (its operations documents, the web app, the Python client) name 146
    # operations between them: a cap of 100 counted a lake's own later ones as `other`.
    metrics_max_operation_names: int = Field(
        default=500, description="Distinct operation names /metrics keeps per process (clients choose them); "
                                 "later ones count as `other`.")
    tracing: bool = Field(
        default=False, description="OpenTelemetry tracing, exported as the OTEL_* variables say (also on when "
                                   "OTEL_TRACES_EXPORTER names an exporter).")

    # --- GraphiQL
    graphiql: bool = True
    graphiql_assets_dir: Path = Field(default=PROJECT_ROOT / "assets" / "node_modules")

    # --- the web app (README, Web app)
    webapp: bool = Field(default=True, description="Serve the web app at / (built by make into webapp_dir).")
    webapp_dir: Path = Field(default=PROJECT_ROOT / "webapp" / "dist", description="The web app's built files (Vite's dist/).")

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_a_directory(cls, value: Path) -> Path:
        # Said here, before anything is made or changed: a file there was made owner-only (chmod) and
        # the command then failed on "File exists" without naming the setting.
        if value.exists() and not value.is_dir():
            raise ValueError(f"{str(value)!r} exists and is not a directory: the data dir must be one (or not exist yet)")
        return value

    @field_validator("log_level", "alert_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        # `info` is what logging's users write as often as `INFO`: both name the same level.
        return value.upper() if isinstance(value, str) else value

    @field_validator(*DURATION_LIMITS)
    @classmethod
    def _duration_within_limit(cls, value: float, info: ValidationInfo) -> float:
        limit, why = DURATION_LIMITS[info.field_name]
        if value > limit:
            raise ValueError(f"at most {limit} ({why})")
        return value

    @field_validator("cors_origins", "alert_email_to", "alert_webhooks", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # A comma-separated list reads better in an env var than a JSON array.
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        # A browser's Origin is scheme://host[:port], lower case, without a default port: one with a path
        # is refused here (Strawberry's WebSocket check would refuse to start), and the rest are written
        # as browsers send them, since CORS compares them as they are ("https://Lab.example:443/" never matched).
        # Imported here, and only when there are origins: Strawberry takes about a second to import, and every
        # `graphlake` command reads settings (pydantic-settings validates the default too).
        if not value:
            return value
        from strawberry.http.websocket_origin import normalize_allowed_origins, normalize_origin

        normalize_allowed_origins(value)  # raises, naming the origin
        return [origin if origin == "*" else str(normalize_origin(origin)) for origin in value]

    @field_validator("public_url")
    @classmethod
    def _public_url_is_a_url(cls, value: str | None) -> str | None:
        # Every signed URL, the banner and the web app's links begin with it: "notaurl" made them all wrong.
        if value is not None:
            parsed = urlsplit(value)
            try:
                parsed.port  # noqa: B018 (read for its check: "host:12a" or a port past 65535 raises)
            except ValueError:
                raise ValueError(f"{value!r} has no valid port: an http(s)://host[:port][/path] URL") from None
            if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
                raise ValueError(f"{value!r} is not an http(s)://host[:port][/path] URL")
        return value

    @field_validator("ingest_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        # Paths may hold commas; ':' separates them as in PATH.
        if isinstance(value, str):
            return [part for part in value.split(":") if part.strip()]
        return value

    @field_validator("ingest_roots")
    @classmethod
    def _roots_are_absolute(cls, value: list[Path]) -> list[Path]:
        # Relative to what? The server's working directory is an accident of how it was started.
        for root in value:
            if not root.is_absolute():
                raise ValueError(f"ingest_roots: {str(root)!r} is not an absolute path")
        return value

    @field_validator("max_query_depth", "max_aliases", "max_tokens", "max_tokens_unauthenticated", "max_selections",
                     "max_merge_cost", "max_request_nodes", "max_body_bytes", "max_header_bytes", "max_page_size", "default_page_size",
                     "max_subscriptions_per_connection", "max_batch_items", "max_value_bytes", "max_metadata_bytes",
                     "max_event_data_bytes", "max_text_bytes", "upload_expiry_seconds", "multipart_threshold_bytes",
                     "max_upload_bytes", "max_download_url_seconds", "thumbnail_concurrency", "thumbnail_max_pixels",
                     "reconcile_interval_seconds", "max_events_per_batch",
                     "max_query_string_chars", "max_query_list_items", "event_feed_bytes", "subscriber_queue_size", "max_event_replay",
                     "event_clock_skew_seconds", "max_websockets", "max_websockets_awaiting_init", "max_websockets_per_token",
                     "max_concurrent_requests", "compression_min_bytes",
                     "metrics_max_operation_names")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @model_validator(mode="after")
    def _body_holds_a_text(self) -> Settings:
        # A storeText comes in the request body: a body limit below the text limit would answer every
        # large text 413 before its own limit, with its own message, could apply.
        if self.max_body_bytes <= self.max_text_bytes:
            raise ValueError(f"max_body_bytes ({self.max_body_bytes}) must exceed max_text_bytes ({self.max_text_bytes}): "
                             "a text comes in the request body")
        return self

    @model_validator(mode="after")
    def _email_alerts_complete(self) -> Settings:
        # Alerts are emailed only with both: either alone was accepted, and every alert went unsent
        # without a word (a server to send through and no one to send to, or the reverse).
        if self.alert_email_to and not self.alert_smtp_host:
            raise ValueError("alert_email_to: no alert_smtp_host to send the alerts through (set GRAPHLAKE_ALERT_SMTP_HOST)")
        if self.alert_smtp_host and not self.alert_email_to:
            raise ValueError("alert_smtp_host: no alert_email_to to send the alerts to (set GRAPHLAKE_ALERT_EMAIL_TO)")
        return self

    @model_validator(mode="after")
    def _s3_url_lifetimes(self) -> Settings:
        # S3 (and MinIO) refuse a presigned URL valid for longer than a week (X-Amz-Expires): with a
        # longer upload expiry every PUT to an S3 mount was refused (an upload's URLs last as long as
        # its session), and a download URL asked for longer was one no client could use.
        s3 = sorted(name for name, mount in self.mounts.items() if isinstance(mount, S3MountSettings))
        for name in ("upload_expiry_seconds", "max_download_url_seconds"):
            if s3 and getattr(self, name) > S3_MAX_URL_SECONDS:
                raise ValueError(f"{name}: at most {S3_MAX_URL_SECONDS} (7 days) with an S3 mount ({', '.join(s3)}), "
                                 "which refuses presigned URLs valid for longer")
        return self

    @model_validator(mode="after")
    def _complete_mounts(self) -> Settings:
        # The local mount always exists, so a fresh install stores files with no configuration.
        mounts = dict(self.mounts)
        mounts.setdefault("local", LocalMountSettings())
        for name, mount in mounts.items():
            if isinstance(mount, LocalMountSettings) and mount.path is None:
                mounts[name] = mount.model_copy(update={"path": self.data_dir / "objects" / name})
            if isinstance(mount, S3MountSettings) and mount.fallback and mount.fallback not in mounts:
                raise ValueError(f"mounts.{name}.fallback: no mount named {mount.fallback!r}")
        if self.default_mount not in mounts:
            raise ValueError(f"default_mount: no mount named {self.default_mount!r} (have {sorted(mounts)})")
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size: must not exceed max_page_size")
        if self.subscriber_queue_size <= self.max_events_per_batch:
            raise ValueError("subscriber_queue_size: must be more than max_events_per_batch (one logEvents batch reaches "
                             "a subscriber's queue at once: a queue no larger drops a subscriber that reads promptly)")
        self.mounts = mounts
        return self

    @property
    def base_url(self) -> str:
        """Where clients reach this server: its signed URLs, the banner's links. Without a public URL,
        a wildcard listening address (`0.0.0.0`, as in the Docker image) names no host a client can
        reach: localhost does, on this machine (and through a container's published port)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.listens_everywhere else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def listens_everywhere(self) -> bool:
        """Whether the server listens on every address (a wildcard host)."""
        return self.host in ("0.0.0.0", "::", "")

    @property
    def base_path(self) -> str:
        """The path the browser reaches Graphlake under: "" or, for a public URL with a path
        (https://host/lake), that path ("/lake"), which a proxy in front strips from each request:
        the web app's and GraphiQL's pages name their files and endpoints under it."""
        return urlsplit(self.base_url).path.rstrip("/")

    @property
    def backups(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"

    @property
    def embedded_database(self) -> bool:
        return self.mongodb_url is None

    @property
    def journals_audit(self) -> bool:
        """Whether AUDIT events are journaled (services/events/journal.py): where the journal is as
        durable as the database, the embedded one beside it in the data dir, unless told."""
        if self.audit_journal is not None:
            return self.audit_journal
        return self.embedded_database and not self.ferretdb_sync_every_commit

    @property
    def audit_journal_dir(self) -> Path:
        return self.data_dir / "audit-journal" / self.database  # the database its entries go to
