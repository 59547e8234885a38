"""documents/lean.py: the read-only twins the resolvers' loaders build read every stored document
as its Beanie class does (JSON values as their text), and give what readers call on them."""

from __future__ import annotations

from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pydantic import BaseModel

from documents.dataset import VersionMember, VersionRecord
from documents.json_value import JsonText, StoredJson
from documents.lean import lean
from documents.record_pack import VersionRecordPack, unpack_all
from documents.registry import DOCUMENT_MODELS
from tests import factories
from tests.conftest import Served
from tests.operations import Api
from tests.seed import seed_version
from tests.test_lookahead import masked_version


def comparable(value: Any) -> Any:
    """A document's value as a twin holds it: a stored JSON value as its text."""
    if isinstance(value, StoredJson | JsonText):
        return value.json
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, BaseModel):
        return {name: comparable(getattr(value, name)) for name in type(value).model_fields}
    return value


async def test_every_stored_document_reads_the_same_through_its_twin(api: Api, served: Served, contributor: str) -> None:
    await seed_version(3)
    await masked_version(api, contributor, "masked", 2)
    await factories.value_asset(api, contributor, "reading", {"temperature": 21.5, "ok": True, "big": 2**70},
                                labels=["lab"], metadata={"run": 7})
    read: set[str] = set()
    # A version's copies of records are stored packed (documents/record_pack.py), and read as VersionRecord.
    stored = [(model, await model.get_pymongo_collection().find().to_list()) for model in DOCUMENT_MODELS]
    stored.append((VersionRecord, unpack_all(await VersionRecordPack.get_pymongo_collection().find().to_list())))
    for model, raws in stored:
        twin = lean(model)
        assert twin.document_class is model  # type: ignore[attr-defined]
        for raw in raws:
            document, lean_document = model.model_validate(raw), twin.model_validate(raw)
            for name in model.model_fields:
                assert comparable(getattr(lean_document, name)) == comparable(getattr(document, name)), (model.__name__, name)
                assert isinstance(getattr(lean_document, name), JsonText) == isinstance(getattr(document, name), JsonText)
            read.add(model.__name__)
    assert read >= {"Asset", "Datum", "Dataset", "DatasetVersion", "VersionMember", "VersionRecordPack", "VersionRecord",
                    "AnnotationRecord", "AnnotationSet", "AnnotationSchema", "ApiToken", "Event"}, read


async def test_a_loader_primed_with_a_twin_primes_its_documents_loader(served: Served) -> None:
    from documents.asset import Asset
    from resolvers.loaders import Loaders

    loaders = Loaders()
    twin = lean(Asset).model_validate({"_id": ObjectId(), "kind": "VALUE", "status": "ACTIVE", "name": "v"})
    loaders.known([twin])
    assert await loaders.by_id(Asset).load(twin.id) is twin


async def test_a_twin_keeps_its_classs_methods_and_reads_json_as_text(served: Served) -> None:
    version = await seed_version(1)
    raw = await VersionMember.get_pymongo_collection().find_one({"version_id": version})
    twin = lean(VersionMember).model_validate(raw)
    assert twin.as_datum().id == raw["datum_id"] and twin.metadata.decode() == VersionMember.model_validate(raw).metadata.decode()
    assert isinstance(twin.metadata, JsonText) and not isinstance(twin.metadata, StoredJson)
    assert not hasattr(twin, "save")  # a twin is never written back


def test_a_twin_takes_object_ids_as_text_as_its_document_does() -> None:
    twin = lean(VersionMember)
    oid = ObjectId()
    member = twin.model_validate({"_id": str(oid), "version_id": oid, "datum_id": str(oid), "split": "TRAIN"})
    assert member.id == oid and isinstance(member.datum_id, ObjectId)
    assert member.model_dump(mode="json")["datum_id"] == str(oid)
    assert PydanticObjectId(str(oid)) == member.version_id
