"""Reading clients' JSON (HTTP bodies, WebSocket messages): what the server will not read is refused with
a reason, where it used to raise inside Strawberry and come back as a plain-text 500 or a dropped socket."""

from __future__ import annotations

import json
import sys


class UnreadableJSON(json.JSONDecodeError):
    """Valid JSON the server will not read. As a JSONDecodeError, Strawberry answers it as it answers bad
    JSON: graphql-transport-ws closes the socket with 4400, graphql-ws skips the message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason


def loads(data: str | bytes) -> object:
    # The standard library's decoder recurses per nesting level, and int() refuses numbers of more than
    # 4300 digits: JSON nested a few thousand levels deep raised RecursionError, such a number ValueError.
    try:
        return json.loads(data)
    except RecursionError:
        raise UnreadableJSON("the request is nested too deeply") from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        raise UnreadableJSON(f"a number in the request has more than {sys.get_int_max_str_digits()} digits") from None


def kind(value: object) -> str:
    """A JSON value's kind, in JSON's words (never a Python class name)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), "a number")


def check_ws_message(message: object) -> None:
    """Refuses a message of either GraphQL WebSocket protocol that is not shaped as the protocol says.

    Strawberry's handlers index into messages unchecked: a string or a `start` without an `id` dropped
    the connection without a close frame, and a `query` that is not a string was answered with
    Python's words ("object of type 'int' has no len()") and no code.
    """
    if not isinstance(message, dict):
        raise UnreadableJSON(f"a message must be a JSON object, not {kind(message)}")
    type_ = message.get("type")
    if not isinstance(type_, str):
        raise UnreadableJSON("a message needs a `type` string")
    if type_ in ("subscribe", "start", "complete", "stop") and "id" not in message:
        raise UnreadableJSON(f"a `{type_}` message needs an `id`")
    if type_ in ("subscribe", "start"):
        payload = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            raise UnreadableJSON(f"a `{type_}` message needs a `payload` object with a `query` string")
        for key in ("variables", "extensions"):
            if not isinstance(payload.get(key), dict | None):
                raise UnreadableJSON(f"`payload.{key}` must be an object, not {kind(payload[key])}")
        if not isinstance(payload.get("operationName"), str | None):
            raise UnreadableJSON("`payload.operationName` must be a string")
