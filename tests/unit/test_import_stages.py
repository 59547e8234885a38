"""How an import's steps run (graphlake_client/dataset_import.py): images, datums and records in
stages that overlap, and record batches that never split an image's records, so an interrupted
import can be finished by a rerun."""

from __future__ import annotations

import asyncio

import pytest

from graphlake_client import dataset_import
from graphlake_client.dataset_import import image_batches, in_stages


async def test_stages_overlap_one_chunk_at_a_time_in_each_step_at_width_1() -> None:
    """While chunk 0 is in the second step, chunk 1 is in the first: each waits for the other to
    begin, which would never happen if the steps ran one after the other (the timeout fails it)."""
    began = {(step, chunk): asyncio.Event() for step in "ab" for chunk in range(3)}
    inside = {"a": 0, "b": 0}
    most = {"a": 0, "b": 0}
    order: list[tuple[str, int]] = []

    def step(name: str):
        async def run(chunk: int) -> None:
            inside[name] += 1
            most[name] = max(most[name], inside[name])
            order.append((name, chunk))
            began[(name, chunk)].set()
            if name == "b" and chunk + 1 < 3:
                await began[("a", chunk + 1)].wait()  # the next chunk's first step runs meanwhile
            if name == "a" and chunk > 0:
                await began[("b", chunk - 1)].wait()
            await asyncio.sleep(0)
            inside[name] -= 1
        return run

    async with asyncio.timeout(5):
        await in_stages([0, 1, 2], step("a"), step("b"), width=1)
    assert most == {"a": 1, "b": 1}
    assert [chunk for name, chunk in order if name == "a"] == [0, 1, 2]
    assert [chunk for name, chunk in order if name == "b"] == [0, 1, 2]
    for chunk in range(3):
        assert order.index(("a", chunk)) < order.index(("b", chunk))


async def test_a_step_takes_at_most_width_chunks_at_once() -> None:
    inside, most = [0], [0]
    release = asyncio.Event()

    async def step(chunk: int) -> None:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        if inside[0] == 2:
            release.set()  # two are in: the rest wait at the gate, whatever this one waits for
        await release.wait()
        await asyncio.sleep(0)
        inside[0] -= 1

    async with asyncio.timeout(5):
        await in_stages(list(range(6)), step, width=2)
    assert most[0] == 2


async def test_after_a_failure_no_chunk_starts_another_step() -> None:
    ran: list[tuple[str, int]] = []

    async def first(chunk: int) -> None:
        ran.append(("first", chunk))
        if chunk == 1:
            raise RuntimeError("chunk 1 failed")

    async def second(chunk: int) -> None:
        ran.append(("second", chunk))
        await asyncio.sleep(0.01)  # chunk 1 fails meanwhile: chunk 0 still ends this step

    with pytest.raises(RuntimeError, match="chunk 1 failed"):
        await in_stages([0, 1, 2, 3], first, second, width=1)
    assert ran == [("first", 0), ("second", 0), ("first", 1)]


async def test_a_cancelled_import_cancels_every_chunk() -> None:
    started, cancelled = [], []
    two_in = asyncio.Event()

    async def hang(chunk: int) -> None:
        started.append(chunk)
        if len(started) == 2:
            two_in.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(chunk)
            raise

    task = asyncio.create_task(in_stages([0, 1, 2, 3], hang, width=2))
    async with asyncio.timeout(5):
        await two_in.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == [0, 1] and sorted(started) == [0, 1]  # the waiting ones never began


async def test_later_failures_are_noted_on_the_first() -> None:
    async def fail(chunk: int) -> None:
        await asyncio.sleep(0)
        raise ValueError(f"chunk {chunk}")

    with pytest.raises(ValueError, match="chunk 0") as raised:
        await in_stages([0, 1], fail, width=2)
    assert raised.value.__notes__ == ["also failed meanwhile: ValueError: chunk 1"]


async def test_a_step_cancelled_from_within_fails_the_import() -> None:
    """A task group takes a child that ends cancelled for done: without care, the chunk would be
    skipped and the import would go on to build its version without that chunk's records."""
    ran: list[int] = []

    async def step(chunk: int) -> None:
        if chunk == 1:
            raise asyncio.CancelledError  # as a library's own timeout might
        ran.append(chunk)

    with pytest.raises(RuntimeError, match=r"a step of the import was cancelled \(step\)"):
        await in_stages([0, 1, 2], step, width=1)
    assert ran == [0]


def test_record_batches_never_split_an_image_unless_it_alone_is_too_big(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_import, "BATCH", 10)
    counts = {"a": 6, "b": 6, "c": 3, "d": 15, "e": 1}
    records = [{"assetId": image, "n": n} for image, count in counts.items() for n in range(count)]
    batches = image_batches(records)
    assert [len(batch) for batch in batches] == [6, 9, 10, 6]
    assert [r for batch in batches for r in batch] == records  # nothing lost, reordered or doubled
    split = {image for image in counts if sum(1 for batch in batches if any(r["assetId"] == image for r in batch)) > 1}
    assert split == {"d"}  # 15 records: more than a batch takes
    assert image_batches([]) == []
