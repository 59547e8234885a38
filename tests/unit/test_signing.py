"""The local mount's signed URLs (storage/signing.py): no rearrangement of a valid URL's parameters
is another valid URL."""

from __future__ import annotations

import itertools
from urllib.parse import parse_qsl, urlsplit

import pytest

from storage.signing import InvalidSignature, UrlSigner


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_a_value_holding_another_parameter_cannot_be_unfolded() -> None:
    signer = UrlSigner(b"k" * 32, "http://lake")
    url = signer.sign("GET", "local", "assets/a", 60, name="x\nsize=1", type="text/plain")
    signed = query(url)
    assert signer.verify("GET", "local", "assets/a", signed)["name"] == "x\nsize=1"
    # The unfolded reading, name "x" plus a parameter size=1: newline-joined values signed both alike.
    unfolded = {**signed, "name": "x", "size": "1"}
    with pytest.raises(InvalidSignature):
        signer.verify("GET", "local", "assets/a", unfolded)


def test_no_rearrangement_of_a_valid_urls_values_validates() -> None:
    signer = UrlSigner(b"k" * 32, "http://lake")
    signed = query(signer.sign("PUT", "local", "assets/b", 60, upload="u1", part="2", size="10", offset="20"))
    names = [k for k in signed if k != "sig"]
    for values in itertools.permutations([signed[k] for k in names]):
        params = dict(zip(names, values, strict=True))
        if params == {k: signed[k] for k in names}:
            continue
        with pytest.raises(InvalidSignature):
            signer.verify("PUT", "local", "assets/b", {**params, "sig": signed["sig"]})
    for mount, key in (("assets", "local/b"), ("local", "assets/b/"), ("local", "assets/c")):
        with pytest.raises(InvalidSignature):
            signer.verify("PUT", mount, key, signed)
