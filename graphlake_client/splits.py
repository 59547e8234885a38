"""The deterministic train/validation/test partition of a version's UNASSIGNED datums: the one
definition, used by the server's `trainingSplit` (services/datasets.py imports it from here: the
server may depend on the client, never the reverse) and by the exporters' `split_ratios`, so a
YOLO or Hugging Face export puts each datum in the very split `trainingSplit` gives it.

A datum's place is a hash of the seed and its raw id, never of anything that changes: the same
seed, datum and ratios give the same split on any machine, forever (changing this function would
move datums between splits that users have trained and evaluated on).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math

from graphlake_client.errors import GraphlakeClientError

SPLITS = ("TRAIN", "VALIDATION", "TEST")


def assign_split(seed: int, raw_id: str, ratios: tuple[float, float, float]) -> str:
    """TRAIN, VALIDATION or TEST for the datum `raw_id` (its database id, as text) under `seed` and
    `ratios` (fractions of 1: see normalised)."""
    digest = hashlib.sha256(f"{seed}:{raw_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    train, validation, _ = ratios
    if u < train:
        return "TRAIN"
    return "VALIDATION" if u < train + validation else "TEST"


def normalised(ratios: tuple[float, float, float]) -> tuple[float, float, float]:
    """(train, validation, test) as fractions of their sum; BAD_USER_INPUT naming `split_ratios`
    unless each is a finite number, 0 or more, and not all are 0 (what trainingSplit refuses too)."""
    if len(ratios) != 3 or not all(isinstance(r, int | float) and math.isfinite(r) and r >= 0 for r in ratios) \
            or sum(ratios) <= 0:
        raise GraphlakeClientError("split_ratios are three finite numbers (train, validation, test), 0 or more, "
                                   f"not all 0: not {ratios!r}", "BAD_USER_INPUT", "split_ratios")
    total = float(sum(ratios))
    return ratios[0] / total, ratios[1] / total, ratios[2] / total


def split_of(datum: dict, ratios: tuple[float, float, float] | None, seed: int) -> str:
    """The split an export puts `datum` (as version_datums gives it) in: the one the version froze,
    or, for an UNASSIGNED datum when `ratios` are given, the one trainingSplit assigns it."""
    if ratios is None or datum["split"] != "UNASSIGNED":
        return datum["split"]
    return assign_split(seed, _raw_id(datum["id"]), ratios)


def _raw_id(global_id: str) -> str:
    """The database id inside a global ID (base64url of "<Type>:<raw id>", services/node_ids.py):
    what the partition hashes, so the client's places are the server's."""
    try:
        return base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode().split(":", 1)[1]
    except (binascii.Error, UnicodeDecodeError, IndexError):
        raise GraphlakeClientError(f"{global_id!r} is not a Graphlake ID", "BAD_USER_INPUT") from None
