"""Configuration from GRAPHLAKE_* variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from graphlake.settings import LocalMountSettings, S3MountSettings, Settings, describe_errors


def test_defaults_give_an_embedded_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("GRAPHLAKE_")]:
        monkeypatch.delenv(key)
    settings = Settings(_env_file=None)
    assert settings.embedded_database and settings.default_mount == "local"
    local = settings.mounts["local"]
    assert isinstance(local, LocalMountSettings) and local.path == settings.data_dir / "objects" / "local"
    assert settings.base_url == "http://127.0.0.1:8000"
    # A wildcard address (the Docker image's) names no host a client reaches: localhost does, here.
    assert Settings(_env_file=None, host="0.0.0.0").base_url == "http://localhost:8000"
    assert Settings(_env_file=None, host="::1", port=9).base_url == "http://[::1]:9"
    assert Settings(_env_file=None, host="0.0.0.0", public_url="https://lake.example/x/").base_url == "https://lake.example/x"


def test_levels_are_taken_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHLAKE_LOG_LEVEL", "info")
    monkeypatch.setenv("GRAPHLAKE_ALERT_LEVEL", "Warning")
    settings = Settings(_env_file=None)
    assert (settings.log_level, settings.alert_level) == ("INFO", "WARNING")


def test_durations_take_their_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("GRAPHLAKE_")]:
        monkeypatch.delenv(key)
    settings = Settings(_env_file=None, database_timeout_seconds=2_147_483, upload_expiry_seconds=365 * 86_400,
                        max_download_url_seconds=365 * 86_400, event_clock_skew_seconds=86_400)
    assert settings.database_timeout_seconds == 2_147_483 and settings.event_clock_skew_seconds == 86_400


def test_local_mounts_alone_take_url_lifetimes_past_a_week(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("GRAPHLAKE_")]:
        monkeypatch.delenv(key)
    settings = Settings(_env_file=None, upload_expiry_seconds=30 * 86_400, max_download_url_seconds=30 * 86_400)
    assert settings.upload_expiry_seconds == settings.max_download_url_seconds == 30 * 86_400


def test_mounts_and_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHLAKE_MOUNTS", '{"lab": {"backend": "s3", "bucket": "raw", "endpoint_url": "http://minio:9000"}}')
    monkeypatch.setenv("GRAPHLAKE_MOUNTS__LAB__REGION", "eu-central-1")
    monkeypatch.setenv("GRAPHLAKE_DEFAULT_MOUNT", "lab")
    monkeypatch.setenv("GRAPHLAKE_CORS_ORIGINS", "https://a.example, https://B.example:443/")
    monkeypatch.setenv("GRAPHLAKE_MONGODB_URL", "mongodb://db:27017/?replicaSet=rs0")
    settings = Settings(_env_file=None)
    lab = settings.mounts["lab"]
    assert isinstance(lab, S3MountSettings) and lab.bucket == "raw" and lab.region == "eu-central-1"
    assert "local" in settings.mounts and settings.default_mount == "lab"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert not settings.embedded_database


@pytest.mark.parametrize(("env", "field"), [
    ({"GRAPHLAKE_DEFAULT_MOUNT": "nowhere"}, "default_mount"),
    ({"GRAPHLAKE_MAX_PAGE_SIZE": "0"}, "max_page_size"),
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b", "fallback": "ghost"}}'}, "fallback"),
    ({"GRAPHLAKE_LOG_LEVEL": "LOUD"}, "log_level"),
    ({"GRAPHLAKE_CORS_ORIGINS": "https://lab.example/app"}, "cors_origins"),
    ({"GRAPHLAKE_CORS_ORIGINS": "lab.example"}, "cors_origins"),
    ({"GRAPHLAKE_MAX_BODY_BYTES": "2000"}, "must exceed max_text_bytes"),  # a text comes in the body
    # One logEvents batch reaches a subscriber's queue whole: a queue no larger drops a prompt reader.
    ({"GRAPHLAKE_SUBSCRIBER_QUEUE_SIZE": "10000"}, "subscriber_queue_size: must be more than max_events_per_batch"),
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b", "public_endpoint_url": "localhost:9000"}}'},
     "public_endpoint_url must be http(s)://host[:port]"),
    # Accepted, then botocore's "Invalid endpoint" stopped the server's start with a traceback naming no setting.
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b", "endpoint_url": "minio:9000"}}'},
     "mounts.lab.s3.endpoint_url\n  Value error, endpoint_url must be http(s)://host[:port], not 'minio:9000'"),
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b", "endpoint_url": "http://[minio"}}'}, "endpoint_url must be"),
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b", "endpoint_url": "http://minio:90a"}}'}, "endpoint_url must be"),
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b", "public_endpoint_url": "http://s3.lab/x", '
                          '"addressing_style": "path"}}'}, "public_endpoint_url must be"),
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b", "public_endpoint_url": "https://s3.lab", '
                          '"addressing_style": "virtual"}}'}, "needs addressing_style path"),
    # uvicorn listened on 70000 % 65536 while signed URLs named :70000.
    ({"GRAPHLAKE_PORT": "70000"}, "port\n  Input should be less than or equal to 65535"),
    ({"GRAPHLAKE_PORT": "0"}, "port\n  Input should be greater than or equal to 1"),
    ({"GRAPHLAKE_PUBLIC_URL": "notaurl"}, "'notaurl' is not an http(s)://host[:port][/path] URL"),
    ({"GRAPHLAKE_PUBLIC_URL": "https://lab.example/?x=1"}, "public_url"),
    # Accepted, every signed URL the server handed out was one no client could send.
    ({"GRAPHLAKE_PUBLIC_URL": "http://127.0.0.1:12a"}, "'http://127.0.0.1:12a' has no valid port"),
    ({"GRAPHLAKE_PUBLIC_URL": "https://lab.example:70000"}, "has no valid port"),
    ({"GRAPHLAKE_ALERT_SMTP_PORT": "-5"}, "alert_smtp_port"),
    # Either alone was accepted, and every alert email went unsent without a word.
    ({"GRAPHLAKE_ALERT_EMAIL_TO": "oncall@lab.example"}, "alert_email_to: no alert_smtp_host"),
    ({"GRAPHLAKE_ALERT_SMTP_HOST": "smtp.lab.example"}, "alert_smtp_host: no alert_email_to"),
    # `inf` passed `gt=0`, then timedelta(seconds=inf) failed every WebSocket's connection_init wait.
    ({"GRAPHLAKE_WEBSOCKET_INIT_TIMEOUT_SECONDS": "inf"}, "websocket_init_timeout_seconds\n  Input should be a finite number"),
    ({"GRAPHLAKE_DATABASE_TIMEOUT_SECONDS": "inf"}, "database_timeout_seconds"),
    ({"GRAPHLAKE_TOKEN_CACHE_SECONDS": "inf"}, "token_cache_seconds"),  # a revoked token worked forever
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b", "timeout_seconds": "inf"}}'}, "timeout_seconds"),
    # Every maintenance round's step failed on them: the date went back past year 1 (or timedelta overflowed).
    ({"GRAPHLAKE_ASSET_GC_AFTER_DAYS": "inf"}, "asset_gc_after_days"),
    ({"GRAPHLAKE_ASSET_GC_AFTER_DAYS": "1000000"}, "asset_gc_after_days\n  Input should be less than or equal to 36500"),
    ({"GRAPHLAKE_EVENT_ARCHIVE_AFTER_DAYS": "1e6"}, "event_archive_after_days"),
    ({"GRAPHLAKE_ANONYMIZE_AFTER_DAYS": "1e9"}, "anonymize_after_days"),
    ({"GRAPHLAKE_BACKUP_EVERY_HOURS": "inf"}, "backup_every_hours"),
    # S3 refuses presigned URLs valid for more than a week: every PUT of a longer upload session was refused.
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b"}}', "GRAPHLAKE_UPLOAD_EXPIRY_SECONDS": "604801"},
     "upload_expiry_seconds: at most 604800 (7 days) with an S3 mount (lab)"),
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b"}}', "GRAPHLAKE_MAX_DOWNLOAD_URL_SECONDS": "2592000"},
     "max_download_url_seconds: at most 604800"),
    # Uploads under the threshold are one PUT, which S3 refuses past 5 GiB.
    ({"GRAPHLAKE_MULTIPART_THRESHOLD_BYTES": str(6 * 1024**3)}, "multipart_threshold_bytes\n  Input should be less than"),
    ({"GRAPHLAKE_BACKUP_EVERY_HOURS": "1e12"}, "backup_every_hours\n  Input should be less than or equal to 876000"),
    # Sent as maxTimeMS, a 32-bit count of milliseconds: past 2^31-1 ms every request failed at the database.
    ({"GRAPHLAKE_DATABASE_TIMEOUT_SECONDS": "2147484"}, "database_timeout_seconds\n  Value error, at most 2147483 (about 24.8 days"),
    # Added to now, ~3e11 s went past year 9999: every upload, download URL or event failed INTERNAL.
    ({"GRAPHLAKE_UPLOAD_EXPIRY_SECONDS": "300000000000"}, "upload_expiry_seconds\n  Value error, at most 31536000 (a year)"),
    ({"GRAPHLAKE_MAX_DOWNLOAD_URL_SECONDS": "300000000000"}, "max_download_url_seconds\n  Value error, at most 31536000"),
    ({"GRAPHLAKE_EVENT_CLOCK_SKEW_SECONDS": "300000000000"}, "event_clock_skew_seconds\n  Value error, at most 86400 (a day"),
    ({"GRAPHLAKE_RECONCILE_INTERVAL_SECONDS": "300000000000"}, "reconcile_interval_seconds\n  Value error, at most 604800"),
    ({"GRAPHLAKE_WEBSOCKET_INIT_TIMEOUT_SECONDS": "1e15"}, "websocket_init_timeout_seconds\n  Value error, at most 3600"),
    ({"GRAPHLAKE_MOUNTS": '{"lab": {"backend": "s3", "bucket": "b", "timeout_seconds": 1e15}}'},
     "timeout_seconds\n  Input should be less than or equal to 3600"),
])
def test_bad_settings_name_the_field(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    assert field in str(error.value)


@pytest.mark.parametrize("env", [
    # A mount missing its bucket: the error's input was the mount, its secret key with it.
    {"GRAPHLAKE_MOUNTS__LAB__BACKEND": "s3", "GRAPHLAKE_MOUNTS__LAB__SECRET_ACCESS_KEY": "SECRET-VALUE"},
    # A rule across settings: its input was every setting given.
    {"GRAPHLAKE_DEFAULT_MOUNT": "nowhere", "GRAPHLAKE_SIGNING_SECRET": "SECRET-VALUE",
     "GRAPHLAKE_MONGODB_URL": "mongodb://lab:SECRET-VALUE@db:27017", "GRAPHLAKE_METRICS_TOKEN": "SECRET-VALUE"},
    {"GRAPHLAKE_MONGODB_URL": "mongodb://lab:SECRET-VALUE@db:27017", "GRAPHLAKE_MAX_BODY_BYTES": "2000"},
])
def test_a_settings_error_never_quotes_what_it_was_given(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("GRAPHLAKE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    assert "SECRET-VALUE" not in str(error.value)  # what a traceback or a log line shows
    assert not any("SECRET-VALUE" in line for line in describe_errors(error.value))


def test_settings_errors_are_told_by_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHLAKE_PORT", "70000")
    monkeypatch.setenv("GRAPHLAKE_MOUNTS", '{"lab": {"backend": "s3", "timeout_seconds": "inf"}}')
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    assert sorted(describe_errors(error.value)) == [
        "GRAPHLAKE_MOUNTS__LAB__BUCKET: Field required",
        "GRAPHLAKE_MOUNTS__LAB__TIMEOUT_SECONDS: Input should be a finite number",
        "GRAPHLAKE_PORT: Input should be less than or equal to 65535",
    ]
