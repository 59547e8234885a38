"""SyncClient offers every public verb of Client, and shows each as a sync caller gets it: a verb
that pages gives a plain Iterator (help(), Jupyter's `?` and inspect read the signature, which
functools.wraps had left the async method's AsyncIterator)."""

from __future__ import annotations

import inspect

from graphlake_client import Client, SyncClient

ASYNC_ONLY = {"aclose"}  # SyncClient.close closes it


def _async_verbs() -> dict[str, object]:
    return {name: member for name, member in inspect.getmembers(Client)
            if not name.startswith("_") and name not in ASYNC_ONLY
            and (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member))}


def test_every_async_verb_has_its_sync_twin() -> None:
    verbs = _async_verbs()
    assert len(verbs) > 30  # the client's verbs were found at all
    assert sorted(name for name in verbs if not hasattr(SyncClient, name)) == []


def test_a_paging_verb_shows_a_plain_iterator() -> None:
    paging = [name for name, member in _async_verbs().items() if inspect.isasyncgenfunction(member)]
    assert {"query_assets", "query_events", "follow_events", "read_version"} <= set(paging)
    for name in paging:
        shown = str(inspect.signature(getattr(SyncClient, name)).return_annotation)
        assert shown.startswith("Iterator[") and "Async" not in shown, (name, shown)
        assert inspect.signature(getattr(SyncClient, name)).parameters.keys() == \
            inspect.signature(getattr(Client, name)).parameters.keys()
