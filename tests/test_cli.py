"""The `graphlake` command, run as a user would (a subprocess) against the test services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient

from graphlake import PROJECT_ROOT
from graphlake.local_services import free_port
from services.node_ids import split_id
from tests.conftest import S3Service


@pytest.fixture
def cli_env(mongodb_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    env.update(GRAPHLAKE_MONGODB_URL=mongodb_url, GRAPHLAKE_DATABASE=f"graphlake_cli_{uuid.uuid4().hex[:8]}",
               GRAPHLAKE_DATA_DIR=str(tmp_path))
    return env


def graphlake(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphlake", *args], env=env, cwd=tmp_cwd(env),
                          capture_output=True, text=True, timeout=60)


def tmp_cwd(env: dict[str, str]) -> str:
    return env["GRAPHLAKE_DATA_DIR"]  # away from the repo's .env


def test_token_lifecycle(cli_env: dict[str, str]) -> None:
    created = graphlake(cli_env, "token", "create", "ci-bot", "--role", "contributor", "--user", "ci@lab")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("glk_") and "shown once" in created.stderr

    listed = graphlake(cli_env, "token", "list")
    assert listed.returncode == 0 and "ci-bot" in listed.stdout and "CONTRIBUTOR" in listed.stdout
    assert secret not in listed.stdout

    again = graphlake(cli_env, "token", "create", "ci-bot")
    assert again.returncode == 1 and "exists already" in again.stderr
    for days in ("0", "-1"):  # 0 used to make a token that never expired
        never = graphlake(cli_env, "token", "create", "ci-bot-2", "--expires-in-days", days)
        assert never.returncode == 2 and "--expires-in-days" in never.stderr and "more than 0" in never.stderr, never.stderr

    revoked = graphlake(cli_env, "token", "revoke", "ci-bot")
    assert revoked.returncode == 0, revoked.stderr
    assert "ci-bot" not in graphlake(cli_env, "token", "list").stdout
    assert "revoked" in graphlake(cli_env, "token", "list", "--all").stdout
    missing = graphlake(cli_env, "token", "revoke", "nobody")
    assert missing.returncode == 1 and "nobody" in missing.stderr

    # Token management outside GraphQL is audited like a mutation, and never with the secret.
    with MongoClient(cli_env["GRAPHLAKE_MONGODB_URL"], serverSelectionTimeoutMS=5000) as client:
        audits = list(client[cli_env["GRAPHLAKE_DATABASE"]].events.find({"event_type": "AUDIT"}).sort("timestamp", 1))
    assert [json.loads(a["data"]["json"])["command"] for a in audits] == ["token create", "token revoke"]
    assert all(json.loads(a["data"]["json"])["ids"] and "(cli)" in a["message"] for a in audits)
    assert secret not in json.dumps([a["data"]["json"] for a in audits])


def test_check_names_what_is_unreachable(cli_env: dict[str, str], s3: S3Service) -> None:
    ok = graphlake(cli_env, "check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "database" in ok.stdout and "mount local: ok" in ok.stdout

    cli_env["GRAPHLAKE_MOUNTS"] = (
        f'{{"lab": {{"backend": "s3", "bucket": "missing-bucket", "endpoint_url": "{s3.endpoint}", '
        f'"access_key_id": "{s3.access_key}", "secret_access_key": "{s3.secret_key}"}}}}'
    )
    bad = graphlake(cli_env, "check")
    assert bad.returncode == 1
    assert "mount lab:" in bad.stdout and "missing-bucket" in bad.stdout and "mount local: ok" in bad.stdout


def test_check_with_the_database_down_says_so_in_one_line_per_part(cli_env: dict[str, str]) -> None:
    """It once waited PyMongo's 30 s for a server, then printed the topology's whole description."""
    port = free_port()  # nothing listens there
    cli_env["GRAPHLAKE_MONGODB_URL"] = f"mongodb://127.0.0.1:{port}"
    down = graphlake(cli_env, "check", "--seconds", "1")
    assert down.returncode == 1, down.stderr
    database, mount = down.stdout.splitlines()
    assert database.startswith(f"database ({cli_env['GRAPHLAKE_DATABASE']}): unreachable: 127.0.0.1:{port}: "), database
    # Whether the lake used the local mount's folder before is not known without the database: a
    # missing one is not made (it may be a file system not mounted yet), and said missing.
    root = Path(cli_env["GRAPHLAKE_DATA_DIR"]) / "objects" / "local"
    assert mount == f"mount local: local mount 'local' at {root}: the folder is missing: is its file system not mounted?"
    assert "Topology" not in database and "Traceback" not in down.stderr and not root.exists()
    root.mkdir(parents=True)
    assert graphlake(cli_env, "check", "--seconds", "1").stdout.splitlines()[1] == "mount local: ok"


def test_tokens_are_listed_and_revoked_by_the_ids_the_api_shows(cli_env: dict[str, str]) -> None:
    assert graphlake(cli_env, "token", "create", "lab-bot").returncode == 0
    listed = graphlake(cli_env, "token", "list")  # piped: tab-separated
    row = next(line.split("\t") for line in listed.stdout.splitlines() if "\tlab-bot\t" in line)
    global_id = row[0]
    assert split_id(global_id)[0] == "ApiToken"
    assert graphlake(cli_env, "token", "revoke", global_id).returncode == 0
    assert "lab-bot" not in graphlake(cli_env, "token", "list").stdout
    with MongoClient(cli_env["GRAPHLAKE_MONGODB_URL"], serverSelectionTimeoutMS=5000) as client:
        audits = list(client[cli_env["GRAPHLAKE_DATABASE"]].events.find({"event_type": "AUDIT"}).sort("timestamp", 1))
    assert [json.loads(a["data"]["json"])["ids"] for a in audits] == [[global_id], [global_id]]  # the same ids


def test_client_commands_find_the_configured_server_and_name_it_when_it_does_not_answer(cli_env: dict[str, str]) -> None:
    port = free_port()  # configured, not running
    cli_env.update(GRAPHLAKE_PORT=str(port), GRAPHLAKE_TOKEN="glk_unused")
    missing = graphlake(cli_env, "download", "QXNzZXQ6NmIwZTNkYTFjMjJkNzM3MDgzZWJiMDcx")
    assert missing.returncode == 1
    assert f"cannot reach http://127.0.0.1:{port}/" in " ".join(missing.stderr.split()), missing.stderr
    elsewhere = graphlake({**cli_env, "GRAPHLAKE_URL": f"http://127.0.0.1:{port + 1}"}, "download", "QXNzZXQ6eA")
    assert f"cannot reach http://127.0.0.1:{port + 1}/" in " ".join(elsewhere.stderr.split()), elsewhere.stderr


def test_invalid_configuration_is_reported_by_field(cli_env: dict[str, str]) -> None:
    cli_env["GRAPHLAKE_DEFAULT_MOUNT"] = "nowhere"
    result = graphlake(cli_env, "check")
    assert result.returncode == 2 and "default_mount" in result.stderr
    # A value that cannot even be decoded: one clean message too, not a traceback.
    undecodable = graphlake({**cli_env, "GRAPHLAKE_MOUNTS": "{bad json"}, "check")
    said = " ".join(undecodable.stderr.split())
    assert undecodable.returncode == 2 and 'error parsing value for field "mounts"' in said, undecodable.stderr
    assert "Expecting property name" in said and "Traceback" not in said
    # One line per error, naming its variable, and never the values given: they hold the secrets.
    secret = {**cli_env, "GRAPHLAKE_MOUNTS__LAB__BACKEND": "s3", "GRAPHLAKE_MOUNTS__LAB__SECRET_ACCESS_KEY": "SECRET-VALUE",
              "GRAPHLAKE_SIGNING_SECRET": "SECRET-VALUE", "GRAPHLAKE_PORT": "70000"}
    both = graphlake(secret, "check")
    assert both.returncode == 2 and "SECRET-VALUE" not in both.stderr, both.stderr
    assert both.stderr.splitlines()[1:] == ["  GRAPHLAKE_MOUNTS__LAB__BUCKET: Field required",
                                            "  GRAPHLAKE_PORT: Input should be less than or equal to 65535"], both.stderr


def test_export_schema_matches_the_committed_file(cli_env: dict[str, str]) -> None:
    result = graphlake(cli_env, "export-schema", "--output", "-")
    assert result.returncode == 0
    assert result.stdout == (PROJECT_ROOT / "graphql" / "schema.graphql").read_text()


def test_ages_must_be_more_than_zero_days(cli_env: dict[str, str]) -> None:
    """`--older-than -5` once archived every event: an age of 0 days or less is refused before anything
    opens; one past a century (`inf` overflowed the date arithmetic into a traceback) too."""
    for command in (("events", "archive"), ("events", "purge"), ("assets", "gc")):
        for days in ("-5", "0", "inf", "1e6"):
            refused = graphlake(cli_env, *command, "--older-than", days)
            assert refused.returncode == 2 and "must be 0 < days <= 36500" in refused.stderr, (
                command, days, refused.stderr)
            assert "Traceback" not in refused.stderr
    bad_setting = graphlake({**cli_env, "GRAPHLAKE_EVENT_ARCHIVE_AFTER_DAYS": "-1"}, "events", "archive", "--older-than", "1")
    assert bad_setting.returncode != 0 and "GRAPHLAKE_EVENT_ARCHIVE_AFTER_DAYS" in bad_setting.stderr


def test_serve_on_a_taken_port_says_so_before_anything_starts(cli_env: dict[str, str]) -> None:
    """The port is bound first: a taken one is one line and exit 1, before the database is opened
    and before any banner says the server is up (uvicorn bound it only after the app's startup)."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        served = graphlake(cli_env, "serve", "--port", str(port))
    assert served.returncode == 1, served.stderr
    said = " ".join(served.stderr.split())
    assert f"cannot listen on 127.0.0.1:{port}" in said and "GRAPHLAKE_PORT" in said
    assert "is up" not in served.stdout + served.stderr


def test_serve_with_tracing_it_cannot_start_says_why_in_one_line(cli_env: dict[str, str]) -> None:
    """An exporter Graphlake does not know was a traceback."""
    said = graphlake({**cli_env, "OTEL_TRACES_EXPORTER": "jaeger"}, "serve", "--port", str(free_port()))
    assert said.returncode == 1 and "Traceback" not in said.stderr, said.stderr
    assert said.stderr.strip().splitlines()[-1] == \
        "error: OTEL_TRACES_EXPORTER: unknown exporter 'jaeger' (Graphlake knows otlp, console, none)"
    assert "is up" not in said.stdout + said.stderr


def test_a_backup_into_a_folder_that_is_not_there_is_refused_and_makes_nothing(cli_env: dict[str, str],
                                                                                tmp_path: Path) -> None:
    """A backup aimed at a disk that is not mounted must not fill the root file system."""
    assert graphlake(cli_env, "token", "create", "ci-bot").returncode == 0
    gone = tmp_path / "mnt" / "backups"
    said = graphlake(cli_env, "backup", str(gone / "monday"))
    assert said.returncode == 1, said.stderr
    (line,) = said.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(gone) in " ".join(said.stderr.split()), line
    assert not (tmp_path / "mnt").exists()


def test_a_path_the_command_cannot_write_is_one_line_not_a_traceback(cli_env: dict[str, str]) -> None:
    assert graphlake(cli_env, "token", "create", "ci-bot").returncode == 0  # a lake, with its schema recorded
    for args, path in ((("backup", "/proc/nope/x"), "/proc/nope"),
                       (("privacy", "export", "bob", "-o", "/proc/nope/bob.json"), "/proc/nope/bob.json")):
        said = graphlake(cli_env, *args)
        assert said.returncode == 1 and "Traceback" not in said.stderr, said.stderr
        (line,) = said.stderr.strip().splitlines()
        assert line.startswith("error: ") and path in line, line


def test_bad_arguments_are_refused_before_anything_runs(cli_env: dict[str, str], tmp_path: Path) -> None:
    """Each of these once printed a traceback (a manifest not there or not JSON, a check's 0 or NaN
    seconds, a token that expires in `inf` days), waited forever (`upload --concurrency 0`), or served
    on another port than the banner said (`serve --port 70000` listened on 70000 % 65536)."""
    data, garbled, listed = tmp_path / "data.txt", tmp_path / "garbled.json", tmp_path / "listed.json"
    data.write_text("plate 7")
    garbled.write_text("{not json")
    listed.write_text("[1]")
    upload = ("upload", str(data), "--url", f"http://127.0.0.1:{free_port()}")  # nothing listens: never reached
    cases = [
        ((*upload, "--manifest", str(tmp_path / "missing.json")), "--manifest", "No such file or directory"),
        ((*upload, "--manifest", str(garbled)), "--manifest", "is not JSON"),
        ((*upload, "--manifest", str(listed)), "--manifest", "is not a JSON object"),
        ((*upload, "--concurrency", "0"), "--concurrency", ""),
        (("check", "--seconds", "0"), "--seconds", "must be 0 < seconds"),
        (("check", "--seconds", "nan"), "--seconds", "must be 0 < seconds"),
        (("token", "create", "ci-bot", "--expires-in-days", "inf"), "--expires-in-days", "at most 36500"),
        (("token", "create", "ci-bot", "--expires-in-days", "1e9"), "--expires-in-days", "at most 36500"),
        (("serve", "--port", "70000"), "--port", "65535"),
        (("serve", "--port", "0"), "--port", ""),
    ]
    for args, option, why in cases:
        said = graphlake(cli_env, *args)
        text = " ".join(said.stderr.replace("│", " ").split())  # as the terminal wraps it, unwrapped
        assert said.returncode == 2 and "Traceback" not in said.stderr, (args, said.stderr)
        assert f"Invalid value for {option}" in text.replace("'", "") and why in text, (args, text)
    with MongoClient(cli_env["GRAPHLAKE_MONGODB_URL"], serverSelectionTimeoutMS=5000) as client:
        assert client[cli_env["GRAPHLAKE_DATABASE"]].api_tokens.count_documents({}) == 0  # no token was made


def test_the_client_refuses_no_concurrency() -> None:
    from graphlake_client import Client

    for concurrency in (0, -1):  # a gate of no slots: every transfer waited on it forever
        with pytest.raises(ValueError, match="concurrency must be at least 1"):
            Client("http://127.0.0.1:1", None, concurrency=concurrency)


def test_a_configured_ferretdb_binary_is_the_one_used_or_none(tmp_path: Path) -> None:
    """GRAPHLAKE_FERRETDB_BIN naming no executable was passed over for the build cache's binary:
    the lake ran on another FerretDB than the one configured, and nothing said so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")}
    (tmp_path / "ferretdb").write_text("not a program")  # a file, but not executable
    (tmp_path / "lake").mkdir()
    for binary in (tmp_path / "missing", tmp_path / "ferretdb"):
        env.update(GRAPHLAKE_DATA_DIR=str(tmp_path / "lake"), GRAPHLAKE_FERRETDB_BIN=str(binary))
        said = graphlake(env, "check")
        assert said.returncode == 1, said.stdout + said.stderr
        database = said.stdout.splitlines()[0]
        assert database == f"database (embedded FerretDB): GRAPHLAKE_FERRETDB_BIN: {binary} is not an executable file"



def test_a_mount_folder_the_lake_used_before_is_reported_missing_not_made(cli_env: dict[str, str], tmp_path: Path) -> None:
    """As the server (tests/test_mount_gone.py): `graphlake check` opened every mount as a new lake's,
    and made a local mount's folder the lake had used, missing because its file system was not
    mounted (yet), anew and empty on the disk below. A command that uses the mounts went through
    with nothing written or deleted there (`assets gc` deleted assets and left their files), saying
    so in a warning; one that does not use them still runs."""
    root = tmp_path / "objects" / "local"
    fresh = graphlake(cli_env, "check")  # a new lake's new mount: its folder is made, as the server makes it
    assert fresh.returncode == 0 and "mount local: ok" in fresh.stdout, fresh.stdout + fresh.stderr
    assert graphlake(cli_env, "token", "create", "first").returncode == 0  # the lake claims its mount, noting its folder
    root.rename(tmp_path / "unmounted")  # not mounted, and nothing in its place

    checked = graphlake(cli_env, "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"mount local: local mount 'local' at {root}: the folder is missing: is its file system not mounted?" \
        in checked.stdout, checked.stdout
    assert not root.exists()
    for command in (("assets", "gc", "--older-than", "1"), ("datasets", "write-content", "--all"),
                    ("privacy", "erase", "someone", "--confirm")):
        refused = graphlake(cli_env, *command)
        assert refused.returncode == 1, (command, refused.stdout + refused.stderr)
        said = " ".join(refused.stderr.split())  # as rich wrapped it
        assert f"error: local mount 'local' at {root}: the folder this lake used before is missing" in said, said
        assert "(UNAVAILABLE)" in said and "graphlake mounts adopt local" in said, said
        assert not root.exists()
    assert graphlake(cli_env, "token", "list").returncode == 0  # uses no mount
    assert not root.exists()

    (tmp_path / "unmounted").rename(root)  # mounted
    assert graphlake(cli_env, "check").returncode == 0
    assert graphlake(cli_env, "assets", "gc", "--older-than", "1").returncode == 0
