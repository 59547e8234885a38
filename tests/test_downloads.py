"""Downloads against the running test server and MinIO: a signed URL kept past its expiry, a server
that is down, a file name the server chose meeting a file already there, a name too long for a
file system."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from graphlake.local_services import free_port
from graphlake_client import Client, GraphlakeClientError, ServerUnreachable
from graphlake_client.downloads import NAME_MAX_BYTES
from graphlake_client.results import FileRef
from tests.conftest import Served
from tests.operations import Api
from tests.test_client import client, graphlake
from tests.waiting import wait_for


async def _refused(url: str) -> bool:
    async with httpx.AsyncClient() as http:
        return (await http.get(url)).status_code == 403


@pytest.mark.parametrize("mount", ["local", "lab"])
async def test_a_download_url_kept_past_its_expiry_is_renewed(served: Served, api: Api, contributor: str,
                                                              tmp_path: Path, mount: str) -> None:
    """Training code keeps `read_version`'s datums (or `get_asset`'s answers) and reads their images
    later: the URL they hold has expired by then, and the bytes still come (a new URL, by id)."""
    source = tmp_path / "image.png"
    source.write_bytes(os.urandom(2000))
    async with client(served, contributor, tmp_path, direct_writes=False) as lake:
        uploaded = await lake.upload_file(source, mount=mount)
        asked = (await api.data("DownloadUrl", {"id": uploaded["id"], "expiresInSeconds": 1}, token=contributor))["asset"]
        await wait_for(lambda: _refused(asked["downloadUrl"]), interval=0.2, what="the 1 s URL to expire")
        image: FileRef = {"id": uploaded["id"], "name": "image.png", "sizeBytes": 2000, "sha256": uploaded["sha256"],
                          "downloadUrl": asked["downloadUrl"], "storage": None}
        assert await lake.read_bytes(image) == source.read_bytes()
        found = await lake.get_asset(uploaded["id"])
        assert await lake.read_bytes({**found, "downloadUrl": asked["downloadUrl"]}) == source.read_bytes()


async def test_a_refused_url_of_no_asset_is_an_error_naming_it(served: Served, contributor: str, tmp_path: Path) -> None:
    async with client(served, contributor, tmp_path) as lake:
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.read_bytes({"id": "", "downloadUrl": f"{served.base_url}/blobs/local/assets/x?expires=1&sig=0"})
    assert refused.value.code in ("FORBIDDEN", "NOT_FOUND") and refused.value.field == "downloadUrl"
    assert "sig=" not in str(refused.value)  # a URL's signature stays out of messages and logs


async def test_downloads_from_a_server_that_is_down_say_so(contributor: str, tmp_path: Path) -> None:
    """Nothing listens on the port: each verb ends in ServerUnreachable (UNAVAILABLE), as a GraphQL
    call does, never httpx's ConnectError."""
    down = f"http://127.0.0.1:{free_port()}"
    async with Client(down, contributor, retries=1) as lake:
        lake.backoff_seconds = 0.01
        for call in (lambda: lake.download("some/alias", tmp_path), lambda: lake.load("some/alias"),
                     lambda: lake.read_bytes("some/alias")):
            with pytest.raises(ServerUnreachable) as unreachable:
                await call()
            assert unreachable.value.code == "UNAVAILABLE" and unreachable.value.field is None
        with pytest.raises(ServerUnreachable) as store_down:
            await lake.read_bytes({"id": "A1", "downloadUrl": f"{down}/blobs/local/assets/x?sig=secret"})
    assert store_down.value.field == "downloadUrl" and "secret" not in str(store_down.value)


async def test_a_file_named_by_the_server_never_replaces_one(served: Served, api: Api, contributor: str,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`download(id, DIR)` names the file after the asset: a file of that name in DIR is the user's,
    kept unless they say `overwrite`; a file the caller names is replaced, as `cp` replaces it."""
    out = tmp_path / "dl"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    async with client(served, contributor, tmp_path) as lake:
        text = await lake.store_text("theirs", name="../../x/notes.txt")
        with pytest.raises(GraphlakeClientError) as taken:
            await lake.download(text["id"], out)
        assert taken.value.code == "CONFLICT" and taken.value.field == "dest" and str(out / "notes.txt") in str(taken.value)
        assert (out / "notes.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
        with pytest.raises(GraphlakeClientError, match="exists"):
            await lake.save_to(text, f"{out}/")
        assert await lake.download(text["id"], out, overwrite=True) == out / "notes.txt"
        assert (out / "notes.txt").read_text() == "theirs"
        (out / "notes.txt").write_text("mine again")
        assert await lake.download(text["id"], out / "notes.txt") == out / "notes.txt"  # named: replaced
        assert (out / "notes.txt").read_text() == "theirs"
        # No DEST: the cwd, where `.bashrc` is the user's own.
        monkeypatch.chdir(out)
        Path(".bashrc").write_text("alias ll='ls -l'")
        dotfile = await lake.store_text("rm -rf ~", name=".bashrc")
        with pytest.raises(GraphlakeClientError, match=r"\.bashrc exists") as dotted:
            await lake.download(dotfile["id"])
        assert dotted.value.code == "CONFLICT"
        assert Path(".bashrc").read_text() == "alias ll='ls -l'"
        value = await lake.store_value({"a": 1}, name="plate-7")
        (out / "plate-7.json").write_text("{}")
        with pytest.raises(GraphlakeClientError, match="exists"):
            await lake.load(value["id"], to=out)
        assert (out / "plate-7.json").read_text() == "{}"
        # A folder of the asset's name: no overwrite replaces it, so the error does not offer one.
        (out / "results").mkdir()
        folder_named = await lake.store_text("x", name="results")
        with pytest.raises(GraphlakeClientError, match="is a folder: name the file to write") as folder:
            await lake.download(folder_named["id"], out, overwrite=True)
        assert folder.value.code == "CONFLICT" and "overwrite" not in str(folder.value)
    assert not list(out.glob(".download-*"))


async def test_the_cli_keeps_a_file_unless_forced(served: Served, contributor: str, tmp_path: Path) -> None:
    out = tmp_path / "dl"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    async with client(served, contributor, tmp_path) as lake:
        text = await lake.store_text("theirs", name="notes.txt")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHLAKE_")},
           "GRAPHLAKE_URL": served.base_url, "GRAPHLAKE_TOKEN": contributor, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code, _, err = await graphlake(env, "download", text["id"], str(out))
    assert code == 1 and "CONFLICT" in err and "--force" in " ".join(err.split()), err
    assert (out / "notes.txt").read_text() == "mine"
    code, _, err = await graphlake(env, "download", text["id"], str(out), "--force")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "theirs"


async def test_a_name_too_long_for_the_file_system_is_trimmed(served: Served, contributor: str, tmp_path: Path) -> None:
    """The server takes names of 500 characters; a file system takes 255 bytes (é is two)."""
    name = "é" * 50 + "a" * 160 + ".bin"  # 214 characters, 264 bytes
    source = tmp_path / "source.bin"
    source.write_bytes(b"long")
    out = tmp_path / "out"
    out.mkdir()
    async with client(served, contributor, tmp_path) as lake:
        asset = await lake.upload_file(source, name=name)
        saved = await lake.download(asset["id"], out)
    assert saved.parent == out and saved.read_bytes() == b"long"
    assert len(saved.name.encode()) <= NAME_MAX_BYTES and saved.name.startswith("é" * 50) and saved.suffix == ".bin"
