"""The document memo (resolvers/document_cache.py) through the app: a document is validated once, even
when it comes back with other comments or layout, and its errors still point into the text sent."""

from __future__ import annotations

import httpx
import pytest

from tests.validations import count_validations


async def test_layout_and_comments_do_not_make_a_document_new(http: httpx.AsyncClient, viewer: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    validations = count_validations(monkeypatch)
    headers = {"Authorization": f"Bearer {viewer}"}
    sent = '{ health { ok } asset(id: "not-an-id, memo test!") { id } }'
    variants = [sent, f"# request {1}\n{sent}", "# request 2\n\n{\n  health { ok }\n  asset(id: \"not-an-id, memo test!\") {\n    id\n  }\n}",
                '{health{ok},asset(id:"not-an-id, memo test!"){id}}']
    where = []
    for text in variants + variants:
        body = (await http.post("/graphql", json={"query": text}, headers=headers)).json()
        assert body["data"] == {"health": {"ok": True}, "asset": None}
        [error] = body["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}
        where.append(error["locations"][0])
        assert text.splitlines()[where[-1]["line"] - 1][where[-1]["column"] - 1:].startswith("asset")
    assert validations == [1]  # once for all of them
    assert len({(w["line"], w["column"]) for w in where}) == 4  # each error points into its own text


async def test_an_invalid_document_is_remembered_by_its_text_only(http: httpx.AsyncClient, viewer: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Its errors carry positions in that text: the same tokens laid out otherwise are validated again."""
    validations = count_validations(monkeypatch)
    headers = {"Authorization": f"Bearer {viewer}"}
    # Documents no other test sends: the memo lives as long as the session's app.
    for text in ("{ health { nopeMemo } }", "{ health { nopeMemo } }", "\n\n{ health {\n nopeMemo } }"):
        [error] = (await http.post("/graphql", json={"query": text}, headers=headers)).json()["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and "nopeMemo" in error["message"]
        assert text.splitlines()[error["locations"][0]["line"] - 1][error["locations"][0]["column"] - 1:].startswith("nopeMemo")
    assert validations == [1, 1]
