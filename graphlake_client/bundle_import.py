"""Bundle import: a bundle (bundle_format.py) into this lake, in two steps.

Prepare validates the bundle (its manifest, and the presence and size of every payload the commit
would read: those of the assets the lake lacks; on a dry run their SHA-256 too) and reports what
the lake lacks, what it holds already and what conflicts, writing nothing.
Commit then makes what is missing, in an order a crash can be finished from: assets (uploaded
through the normal signed-URL path declaring the manifest's SHA-256, which the lake checks as it
stores each file, or stored as values and texts, hashed here first), datums, schemas and sets,
records (and their verification), and last the version, with the same name and splits. So an
import reads each payload once; a payload unlike its manifest entry stops it before any datum.

Nothing is marked as imported: every step finds what is there by content (bundle_lookup.py), so
a rerun after a crash finishes the job and a second import creates nothing. Uploaded files are
filed in a collection named after the dataset at `bundle/<sha256>`, so the copy policy finds its
own earlier uploads; copy-if-missing takes any ACTIVE asset of the lake with the same SHA-256.
Values and texts live in the database: under every policy one with the same SHA-256 is reused.

The imported version must hash (manifestSha256) as the bundle says the source did; the commit
checks it and fails loudly if not. Under the reference policy it cannot: files registered in place
are EXTERNAL assets, which a version names by URI (`uri:`), not by the SHA-256 of bytes the lake
never read; the report then says `same_hash: false`, and the version still verifies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphlake_client import bundle_lookup as lookup
from graphlake_client import operations as ops
from graphlake_client import results
from graphlake_client.bundle_assets import place_assets, referenced_files
from graphlake_client.bundle_files import BundleReader, open_reader, payload_problems, payloads_refused
from graphlake_client.bundle_records import place_records
from graphlake_client.dataset_import import chunks
from graphlake_client.errors import GraphlakeClientError
from graphlake_client.exit_loop import to_thread
from graphlake_client.results import BundleImport, Policy, VersionState

if TYPE_CHECKING:
    from graphlake_client.client import Client

POLICIES = ("copy", "copy-if-missing", "reference")


@dataclass
class Tally:
    """New and present things of one kind."""

    new: int = 0
    present: int = 0


@dataclass
class Report:
    """What an import found and did (prepare: would do)."""

    dataset: str
    version: str
    manifest_sha256: str
    policy: Policy
    assets: Tally = field(default_factory=Tally)
    new_bytes: int = 0
    datums: Tally = field(default_factory=Tally)
    schemas: Tally = field(default_factory=Tally)
    sets: Tally = field(default_factory=Tally)
    records: Tally = field(default_factory=Tally)
    to_verify: int = 0
    version_state: VersionState = "new"
    conflicts: list[str] = field(default_factory=list)
    committed: bool = False
    version_id: str | None = None
    same_hash: bool | None = None  # the version here hashes as the source's (None: no version yet)

    def as_dict(self) -> BundleImport:
        def tally(t: Tally) -> results.Tally:
            return {"new": t.new, "present": t.present}
        return {"dataset": self.dataset, "version": self.version, "manifest_sha256": self.manifest_sha256,
                "policy": self.policy,
                "assets": {"new": self.assets.new, "present": self.assets.present, "new_bytes": self.new_bytes},
                "datums": tally(self.datums), "schemas": tally(self.schemas), "sets": tally(self.sets),
                "records": {"new": self.records.new, "present": self.records.present, "to_verify": self.to_verify},
                "version_state": self.version_state,
                "conflicts": self.conflicts, "committed": self.committed, "version_id": self.version_id,
                "same_hash": self.same_hash}


Locate = Callable[[str], dict[str, Any]]


async def import_bundle(lake: Client, src: Path | str, *, policy: Policy = "copy", dry_run: bool = False,
                        say: Callable[[str], None] = lambda _: None, progress: Callable[[int], None] | None = None,
                        locate: Locate | None = None, mount: str | None = None,
                        dataset: str | None = None, confined: bool = False) -> BundleImport:
    """Prepare, then (unless `dry_run`, or there are conflicts: CONFLICT) commit; the report.
    `src`: a directory or a .tar here, or (a str) an `s3://bucket/prefix` read with boto3's credentials.
    `locate(payload path)` says where a payload lies for the reference policy, as registerExternal's
    {mount, bucket, prefix} (the server knows, for a bundle on an S3 mount; for an s3:// bundle, its
    objects, read by the lake's S3 mount `mount`: by default its only one); without it a bundle
    holding files cannot be referenced. `dataset`: the name of the dataset to import it into, in
    place of the bundle's (a lake holding another version of that name and dataset). `confined`: the
    server reads a bundle on its mount for a caller, and refuses links in it (BundleReader)."""
    if policy not in POLICIES:
        raise GraphlakeClientError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}", "BAD_USER_INPUT",
                                   "policy")
    if dataset is not None and not dataset.strip():
        raise GraphlakeClientError("name a dataset, or leave dataset out to keep the bundle's", "BAD_USER_INPUT",
                                   "dataset")
    reader, manifest = await _opened(src, confined)
    with reader:
        if dataset is not None:  # the name is not in the version's hash: the imported version hashes the same
            manifest["dataset"]["name"] = dataset.strip()
        if locate is None and policy == "reference" and referenced_files(manifest) and not isinstance(reader, BundleReader):
            locate = reader.locator(await _s3_mount(lake, src, mount))
        preparing = Pass(lake, reader, manifest, policy, say, progress, locate, hashing=dry_run)
        prepared = await preparing.run(write=False)
        if prepared.version_state == "present" and prepared.same_hash:
            # The version is here already, with the bundle's hash: nothing of the bundle is needed, and
            # no payload is read (a dry run says so too). Going on, the copy policy uploaded a bundle's
            # files again into the lake it came from, and made a datum for each, which no version holds.
            return _nothing_new(prepared).as_dict()
        await preparing.check(preparing.to_read)
        if dry_run:
            return prepared.as_dict()
        if prepared.conflicts:
            raise GraphlakeClientError("the bundle conflicts with what the lake holds: " + "; ".join(prepared.conflicts[:5]),
                                       "CONFLICT")
        committing = Pass(lake, reader, manifest, policy, say, progress, locate, hashing=False)
        committing.checked = preparing.checked  # the commit checks only what the lake lost meanwhile
        done = await committing.run(write=True)
        # What was made is what was new when prepared; the second pass finds it all present.
        for name in ("assets", "datums", "schemas", "sets", "records"):
            setattr(done, name, getattr(prepared, name))
        done.new_bytes, done.to_verify = prepared.new_bytes, prepared.to_verify
        done.version_state = prepared.version_state
        return done.as_dict()


async def _opened(src: Path | str, confined: bool) -> tuple[Any, dict[str, Any]]:
    """The bundle's reader and its manifest, both made in threads: a tar's manifest is its last
    member, found by reading the whole tar (decompressing a .tar.gz), and an S3 bundle's is a request.
    The server runs this for prepareBundleImport and commitBundleImport (resolvers/bundles/runner.py):
    on its event loop, a 1 MB gzip of 1 GiB of zeros held every other request for 2.6 s."""
    reader = await to_thread(open_reader, src, confined=confined)
    try:
        return reader, await to_thread(reader.manifest)
    except BaseException:
        reader.__exit__(None, None, None)
        raise


def report_of(answer: dict[str, Any]) -> BundleImport:
    """A BundleImportReport as the server answers it (prepareBundleImport / commitBundleImport), in the
    shape import_bundle gives (Report.as_dict): a script reads one shape whichever side imported."""
    def tally(t: dict[str, int]) -> results.Tally:
        return {"new": t["new"], "present": t["present"]}
    version = answer.get("version") or {}
    return {"dataset": answer["dataset"], "version": answer["versionName"], "manifest_sha256": answer["manifestSha256"],
            "policy": answer["policy"].lower().replace("_", "-"),
            "assets": {"new": answer["assets"]["new"], "present": answer["assets"]["present"],
                       "new_bytes": int(answer["newBytes"])},
            "datums": tally(answer["datums"]), "schemas": tally(answer["schemas"]), "sets": tally(answer["sets"]),
            "records": {"new": answer["records"]["new"], "present": answer["records"]["present"],
                        "to_verify": answer["toVerify"]},
            "version_state": answer["versionState"], "conflicts": answer["conflicts"], "committed": answer["committed"],
            "version_id": version.get("id"), "same_hash": answer["sameHash"]}


def _nothing_new(report: Report) -> Report:
    """`report` of a version the lake holds already: what the bundle has is there, nothing is made."""
    for name in ("assets", "datums", "schemas", "sets", "records"):
        tally = getattr(report, name)
        tally.present, tally.new = tally.present + tally.new, 0
    report.new_bytes = report.to_verify = 0
    return report


async def _s3_mount(lake: Client, src: Path | str, named: str | None) -> str:
    """The lake's S3 mount that registers an s3:// bundle's files in place: `named`, checked before
    anything is read (a lake holding the version already would never ask the server), else its only one."""
    mounts = [m["name"] for m in (await lake.execute(ops.MOUNT_BACKENDS))["mounts"] if m["backend"] == "s3"]
    if named is not None:
        if named not in mounts:
            raise GraphlakeClientError(f"mount: must name an s3 mount whose credentials can read the bucket; the lake's "
                                       f"S3 mounts: {', '.join(mounts) or 'none'}", "BAD_USER_INPUT", "mount")
        return named
    if len(mounts) == 1:
        return mounts[0]
    raise GraphlakeClientError(
        f"the reference policy registers the files of {src} where they lie, through an S3 mount of the lake whose "
        f"credentials read that bucket; the lake has {len(mounts)} S3 mounts ({', '.join(mounts) or 'none'}): "
        + ("name one (mount=, --mount)" if mounts else "import it with --policy copy or copy-if-missing"),
        "BAD_USER_INPUT", "mount" if mounts else "policy")


async def _check_payloads(reader: Any, manifest: dict[str, Any], to_read: set[str], say: Callable[[str], None],
                          concurrency: int, *, hashing: bool = True) -> None:
    """Refuse a bundle whose payloads `to_read` (the paths the commit reads) are missing or not what
    the manifest says, naming the file. The others are not read: an asset the lake holds already
    (by SHA-256) is used as it is, and a file the reference policy registers stays where it lies,
    so a rerun of a large import hashes only what is still missing. Without `hashing`, only that
    each is there with its size (a commit's check: the lake checks each file's SHA-256 as it
    stores it, Pass.hashing says why).
    Hashing is most of an import's own work: payloads are read in threads (hashlib lets go of the
    GIL), `concurrency` at a time, or one at a time from a tar (a single stream)."""
    payloads = {a["payload"]["path"]: a["payload"] for a in manifest["assets"].values()
                if a["kind"] != "EXTERNAL" and a["payload"]["path"] in to_read}
    say(f"checking {len(payloads)} payloads" + ("" if hashing else " are there, of their size"))
    if problems := await payload_problems(reader, list(payloads.values()), concurrency, hashing=hashing):
        raise payloads_refused(problems)
    say(f"checked {len(payloads)} payloads: " + ("each is what the manifest says" if hashing else
                                                "each is there, of its size (its SHA-256 is checked as it is stored)"))


class Pass:
    """One pass over the bundle: with write=False it only reads and reports (prepare); with
    write=True it makes what is missing as it goes (commit)."""

    def __init__(self, lake: Client, reader: Any, manifest: dict[str, Any], policy: Policy,
                 say: Callable[[str], None], progress: Callable[[int], None] | None, locate: Locate | None,
                 *, hashing: bool = True) -> None:
        self.lake, self.reader, self.manifest, self.policy = lake, reader, manifest, policy
        # Whether `check` hashes the payloads. A dry run does: it is how a bundle is checked whole
        # without writing. A commit does not: every file it stores declares the manifest's SHA-256,
        # which the lake checks the bytes it stores against (a file unlike it is refused, never
        # kept), and values and texts are hashed here as they are read (bundle_assets), so hashing
        # first only read every payload twice (a 1 GiB import: 0.55 s of its 1.65 s). A payload the
        # lake refuses is then named as the check would (bundle_assets._upload), once the files
        # before it are stored: whole, as the bundle names them, and found by a rerun.
        self.hashing = hashing
        self.say, self.progress, self.locate = say, progress, locate
        head = manifest["version"]
        self.report = Report(manifest["dataset"]["name"], head["name"], head["manifest_sha256"], policy)
        self.to_read: set[str] = set()  # the payloads a commit reads: those of the assets the lake lacks
        self.checked: set[str] = set()  # the payloads checked against the manifest so far
        self.asset_of: dict[str, str] = {}  # bundle ref -> lake id, for the assets found or made
        self.datum_of: dict[str, str] = {}
        self.schema_of: dict[str, str] = {}
        self.set_of: dict[str, str] = {}

    async def check(self, paths: set[str]) -> None:
        """Check the payloads at `paths` not checked yet (_check_payloads), before anything is written
        from them: prepare checks what it found missing, and a commit what went missing since."""
        todo = paths - self.checked
        if todo:
            await _check_payloads(self.reader, self.manifest, todo, self.say, self.lake.concurrency, hashing=self.hashing)
            self.checked |= todo

    async def run(self, write: bool) -> Report:
        await self._assets(write)
        await self._datums(write)
        await self._schemas(write)
        await self._sets(write)
        await self._records(write)
        await self._version(write)
        return self.report

    # --- assets
    async def _assets(self, write: bool) -> None:
        await place_assets(self, write)

    # --- datums
    async def _datums(self, write: bool) -> None:
        wanted: dict[str, list[dict[str, Any]]] = {}  # key -> the bundle's datums with it
        for datum in self.manifest["datums"]:
            roles = [(r["role"], self.asset_of.get(r["asset"])) for r in datum["roles"]]
            if all(asset for _, asset in roles):
                key = lookup.datum_key(datum["split"], roles, datum["metadata"])  # type: ignore[arg-type]
                wanted.setdefault(key, []).append(datum)
        firsts = [self.asset_of[d["roles"][0]["asset"]] for found in wanted.values() for d in found]
        existing = await lookup.datums_using(self.lake, firsts) if firsts else {}
        for key, datums in wanted.items():
            for datum, datum_id in zip(datums, existing.get(key, []), strict=False):
                self.datum_of[datum["ref"]] = datum_id
        missing = [d for d in self.manifest["datums"] if d["ref"] not in self.datum_of]
        self.report.datums = Tally(new=len(missing), present=len(self.manifest["datums"]) - len(missing))
        if not write:
            return
        for chunk in chunks(missing):
            inputs = [{"roles": [{"role": r["role"], "assetId": self.asset_of[r["asset"]]} for r in d["roles"]],
                       "split": d["split"], "metadata": d["metadata"]} for d in chunk]
            created = (await self.lake.execute(ops.CREATE_DATUMS, {"inputs": inputs}))["createDatums"]
            self.datum_of.update({d["ref"]: c["id"] for d, c in zip(chunk, created, strict=True)})
        if missing:
            self.say(f"created {len(missing)} datums")

    # --- schemas and sets
    async def _schemas(self, write: bool) -> None:
        known = await lookup.schemas(self.lake)
        for ref, schema in self.manifest["schemas"].items():
            same = next((k for k in known if k["name"] == schema["name"] and _schema_body(k) == _bundle_schema_body(schema)), None)
            if same:
                self.schema_of[ref] = same["id"]
                self.report.schemas.present += 1
                continue
            self.report.schemas.new += 1
            if write:
                taken = any(k["name"] == schema["name"] and k["version"] == schema.get("version") for k in known)
                created = (await self.lake.execute(ops.CREATE_SCHEMA, {"input": {
                    "name": schema["name"], "version": None if taken else schema.get("version"), "kinds": schema["kinds"],
                    "labels": [{"name": label["name"], "displayName": label.get("display_name"), "color": label.get("color")}
                               for label in schema["labels"]],
                    "allowScores": schema.get("allow_scores", True),
                    "requiredAttributes": schema.get("required_attributes") or []}}))["createAnnotationSchema"]
                self.schema_of[ref] = created["id"]
                known.append({**created, **_lake_schema(schema)})

    async def _sets(self, write: bool) -> None:
        known = await lookup.sets(self.lake)
        for ref, wanted in self.manifest["sets"].items():
            schema = self.schema_of.get(wanted["schema"])
            same = next((k for k in known if schema and k["schema"]["id"] == schema and k["name"] == wanted["name"]
                         and k["purpose"] == wanted["purpose"]
                         and lookup.canonical(k["source"]) == lookup.canonical(wanted.get("source"))), None)
            if same:
                self.set_of[ref] = same["id"]
                self.report.sets.present += 1
                continue
            self.report.sets.new += 1
            if write:
                created = (await self.lake.execute(ops.CREATE_SET, {"input": {
                    "name": wanted["name"], "purpose": wanted["purpose"], "schemaId": schema,
                    "source": wanted.get("source")}}))["createAnnotationSet"]
                self.set_of[ref] = created["id"]

    # --- records
    async def _records(self, write: bool) -> None:
        await place_records(self, write)

    # --- the version
    async def _version(self, write: bool) -> None:
        head, dataset = self.manifest["version"], self.manifest["dataset"]
        found = (await self.lake.execute(ops.VERSION, {"dataset": dataset["name"], "version": head["name"]}))["datasetVersion"]
        referenced = self.policy == "reference" and bool(referenced_files(self.manifest))
        if found is not None:
            self.report.version_id = found["id"]
            self.report.same_hash = found["manifestSha256"] == head["manifest_sha256"]
            if self.report.same_hash or referenced:  # referenced files are named by URI: another hash, by design
                self.report.version_state = "present"
            else:
                self.report.version_state = "conflict"
                self.report.conflicts.append(
                    f"version {dataset['name']}/{head['name']} exists with manifest hash {found['manifestSha256']}, "
                    f"the bundle's is {head['manifest_sha256']}: import it into another dataset (--dataset NAME, "
                    "dataset=), or delete that version first (deleteDatasetVersion, ADMIN)")
            return
        if not write:
            return
        existing = (await self.lake.execute(ops.DATASET, {"name": dataset["name"]}))["dataset"]
        dataset_id = existing["id"] if existing else (await self.lake.execute(ops.CREATE_DATASET_DESCRIBED, {"input": {
            "name": dataset["name"], "description": dataset.get("description")}}))["createDataset"]["id"]
        try:
            # The lake builds the version only if it hashes as the source's did (a manifest edited after
            # its export names content of another hash): refused, it leaves no version behind.
            made = (await self.lake.execute(ops.CREATE_VERSION, {"input": {
                "datasetId": dataset_id, "version": head["name"], "description": head.get("description"),
                "addDatums": list(dict.fromkeys(self.datum_of[d["ref"]] for d in self.manifest["datums"])),
                "addAnnotationSets": [self.set_of[ref] for ref in self.manifest["sets"]],
                # Referenced files are named by URI: another hash, by design.
                "expectedManifestSha256": None if referenced else head["manifest_sha256"]}}))["createDatasetVersion"]
        except GraphlakeClientError as error:
            if error.field != "expectedManifestSha256" or error.code != "CONFLICT":
                raise
            raise GraphlakeClientError(
                f"the bundle's content does not hash to its source version's manifest hash {head['manifest_sha256']} "
                f"({error}): the manifest was changed after its export; version {dataset['name']}/{head['name']} was "
                "not made", "INTEGRITY", "manifest.json") from error
        self.report.version_id, self.report.committed = made["id"], True
        self.report.same_hash = made["manifestSha256"] == head["manifest_sha256"]
        self.say(f"built version {dataset['name']}/{head['name']}")


def _schema_body(schema: dict[str, Any]) -> str:
    """A lake schema's rules, comparable with a bundle's."""
    return lookup.canonical([sorted(schema["kinds"]), [[label["name"], label["displayName"], label["color"]]
                                                       for label in schema["labels"]],
                             schema["allowScores"], sorted(schema["requiredAttributes"])])


def _bundle_schema_body(schema: dict[str, Any]) -> str:
    return _schema_body(_lake_schema(schema))


def _lake_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A bundle schema in the lake's (GraphQL) shape."""
    return {"name": schema["name"], "version": schema.get("version"), "kinds": schema["kinds"],
            "labels": [{"name": label["name"], "displayName": label.get("display_name"), "color": label.get("color")}
                       for label in schema["labels"]],
            "allowScores": schema.get("allow_scores", True), "requiredAttributes": schema.get("required_attributes") or []}
