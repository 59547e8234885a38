"""GraphQL over HTTP (the GraphQL Foundation's spec): which media type a client asked for, and which
status a result goes out with.

Clients that send `Accept: application/graphql-response+json` get that media type and the spec's
status codes: a request error (the document does not parse or validate, a variable cannot be coerced,
a limit refuses the document) is a 4xx with no `data` key, so a client, a proxy or a log can tell it
from a result at a glance. Every other client (no Accept, `*/*`, `application/json`) keeps what it
always had: `application/json`, 200 and `"data": null`, because older clients read a 4xx as a
transport failure and drop the errors that say what was wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphql import GraphQLError

JSON = "application/json"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"

# A request error's status by its code; any other code is 400 (the request, not the server, was wrong).
_REQUEST_ERROR_STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "UNAVAILABLE": 503, "INTERNAL": 500}


def _qualities(accept: str) -> list[tuple[str, float]]:
    """The media types of an Accept header with their q-values, in the order listed."""
    listed = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        listed.append((media.lower(), quality))
    return listed


def response_media_type(accept: str | None) -> str:
    """`application/graphql-response+json` when the client lists it and does not prefer plain JSON to
    it (by q-value, a wildcard standing for JSON); `application/json` otherwise, including for no
    Accept, `*/*` and anything else."""
    if not accept or GRAPHQL_RESPONSE_JSON not in accept:
        return JSON
    qualities: dict[str, float] = {}
    for media, quality in _qualities(accept):
        qualities[media] = max(quality, qualities.get(media, 0.0))
    wanted = qualities.get(GRAPHQL_RESPONSE_JSON, 0.0)
    # Plain JSON's quality: its own if listed, else the wildcard's that covers it.
    plain = qualities[JSON] if JSON in qualities else max(qualities.get("application/*", 0.0), qualities.get("*/*", 0.0))
    # On a tie the spec's media type wins: a client that names it knows it.
    return GRAPHQL_RESPONSE_JSON if wanted > 0 and wanted >= plain else JSON


EVENT_STREAM = "text/event-stream"


def wants_event_stream(accept: str) -> bool:
    """Whether a request asks to be answered as Server-Sent Events: `text/event-stream` listed, and no
    JSON type preferred to it (a higher q-value, or the same one listed before it). urql lists every
    type it can read, JSON first and `text/event-stream` after, and wants JSON for a query; the
    graphql-sse client lists `text/event-stream` alone."""
    if EVENT_STREAM not in accept.lower():  # nearly every request: nothing to weigh (_qualities lowercases too)
        return False
    best_stream, best_json = None, None
    for place, (media, quality) in enumerate(_qualities(accept)):
        if quality <= 0:
            continue
        rank = (quality, -place)
        if media == EVENT_STREAM and (best_stream is None or rank > best_stream):
            best_stream = rank
        elif media in (JSON, GRAPHQL_RESPONSE_JSON) and (best_json is None or rank > best_json):
            best_json = rank
    return best_stream is not None and (best_json is None or best_stream > best_json)


def is_request_error(data: object, errors: Sequence[GraphQLError] | None) -> bool:
    """True when the operation never ran: no data and only errors without a path. An error raised by a
    field always has a path (and leaves `data`, perhaps null, in the result); parse, validation,
    variable-coercion and limit errors never do."""
    return data is None and bool(errors) and all(not error.path for error in errors)


def request_error_status(errors: Sequence[GraphQLError]) -> int:
    """The status of a request error under application/graphql-response+json (4xx unless the server
    itself was at fault), read from the first error's code."""
    code = (errors[0].extensions or {}).get("code") if errors else None
    return _REQUEST_ERROR_STATUS.get(str(code), 400)
