"""Our FerretDB build deletes any number of documents in one command (scripts/ferretdb/patch.py,
step 12): upstream named them all in one SQL statement, and SQLite takes 32,766 variables a
statement, so deleting more at once failed ("too many SQL variables")."""

from __future__ import annotations

from pathlib import Path

from tests.test_pushdown import our_ferretdb


def test_a_delete_of_more_documents_than_a_statement_takes_deletes_them_all(tmp_path: Path) -> None:
    with our_ferretdb(tmp_path / "ferretdb") as client:
        things = client.writes.things
        things.insert_many([{"_id": i, "version": i % 2} for i in range(70_000)])
        assert things.delete_many({"version": 0}).deleted_count == 35_000  # more than 32,766
        assert things.count_documents({}) == 35_000 and things.count_documents({"version": 0}) == 0
        assert things.delete_many({}).deleted_count == 35_000
        assert things.count_documents({}) == 0
