"""The Python client stands alone: with every server package unimportable, it still uploads (directly
into a shared mount, and over HTTP with a retried PUT), downloads and logs events against the
running test server, and never loads a server module on the way."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import textwrap
from pathlib import Path

from documents.upload import UploadSession
from tests.conftest import Served
from tests.operations import Api, object_id

SERVER_PACKAGES = ["graphlake", "resolvers", "documents", "storage", "migrations"]

# Run in a fresh interpreter: this test process has the server loaded, so importing the client here
# would prove nothing. The finder goes first on sys.meta_path, so any import of a server package
# (even a lazy one inside a function) fails loudly instead of quietly finding the source tree.
CLIENT_ALONE = textwrap.dedent("""
    import asyncio, importlib.abc, json, sys
    from pathlib import Path

    SERVER = set(sys.argv[1].split(","))

    class ServerPackagesForbidden(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in SERVER:
                raise ImportError(f"the client imported the server package {name!r}")
            return None

    sys.meta_path.insert(0, ServerPackagesForbidden())

    import httpx
    from graphlake_client import Client, ResumeState

    class OneFailedPut(httpx.AsyncHTTPTransport):
        # The store answers the first PUT with 503: the retry policy must send it again.
        def __init__(self):
            super().__init__()
            self.puts = 0

        async def handle_async_request(self, request):
            if request.method == "PUT":
                self.puts += 1
                if self.puts == 1:
                    return httpx.Response(503, request=request)
            return await super().handle_async_request(request)

    async def main(url, token, work):
        resume = ResumeState(work / "resume.json")
        async with Client(url, token, resume=resume) as lake:  # shares the test server's mount: direct
            direct = await lake.upload_paths([work / "run"], collection="standalone")
        store = OneFailedPut()
        async with Client(url, token, resume=resume, direct_writes=False, storage_transport=store) as lake:
            lake.backoff_seconds = 0.01
            over_http = await lake.upload_file(work / "alone.bin")
            saved = await lake.download(over_http["id"], work / "copy.bin")
            event = await lake.log_event("STANDALONE_CLIENT", "uploaded without the server's code")
        leaked = sorted(m for m in sys.modules if m.partition(".")[0] in SERVER)
        print(json.dumps({"direct": direct, "over_http": over_http, "saved": str(saved), "event": event,
                          "puts": store.puts, "leaked": leaked}))

    asyncio.run(main(sys.argv[2], sys.argv[3], Path(sys.argv[4])))
""")


async def test_the_client_runs_with_no_server_package_importable(served: Served, api: Api, contributor: str,
                                                                  tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "frames").mkdir(parents=True)
    (run / "frames" / "0001.raw").write_bytes(os.urandom(2000))
    (run / "notes.txt").write_text("standalone\n")
    (run / "debug.log").write_text("skipped by .gitignore\n")
    (run / ".gitignore").write_text("*.log\n")
    alone = tmp_path / "alone.bin"
    alone.write_bytes(os.urandom(5000))

    # cwd is tmp_path, so the repository root is not on the child's sys.path through the current
    # directory: it finds graphlake_client as an installed package, the way a user's script would.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT_ALONE, ",".join(SERVER_PACKAGES), served.base_url, contributor, str(tmp_path),
        cwd=tmp_path, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)  # the server runs on this event loop: never block it
    assert process.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])

    assert result["leaked"] == []
    assert sorted(a["name"] for a in result["direct"]) == [".gitignore", "0001.raw", "notes.txt"]
    assert all(a["status"] == "ACTIVE" for a in result["direct"])
    assert result["over_http"]["status"] == "ACTIVE"
    assert result["over_http"]["sha256"] == hashlib.sha256(alone.read_bytes()).hexdigest()
    assert result["puts"] == 2  # the 503, then the retry
    assert Path(result["saved"]).read_bytes() == alone.read_bytes()

    direct = await UploadSession.find({"asset_id": {"$in": [object_id(a["id"]) for a in result["direct"]]}}).to_list()
    assert len(direct) == 3 and all(s.direct for s in direct)  # written into the shared mount, not PUT
    over_http = await UploadSession.find_one({"asset_id": object_id(result["over_http"]["id"])})
    assert over_http is not None and not over_http.direct
    event = (await api.data("Event", {"id": result["event"]}, token=contributor))["event"]
    assert event["eventType"] == "STANDALONE_CLIENT"
    assert json.loads((tmp_path / "resume.json").read_text()) == {}  # every upload completed
