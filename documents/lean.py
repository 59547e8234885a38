"""Lean twins of document classes, for code that only reads what it loads (the resolvers' loaders,
list pages and `node`/`nodes`).

A page of a nested read builds hundreds to thousands of documents from raw BSON: a dataset
version's page of 100 datums holds their 1,000 annotation records. Built as Beanie documents, each
costs several times a plain pydantic model of the same fields: Beanie's `__init__` runs in Python
around pydantic's validation, every ObjectId field runs a Python validator, a stored JSON value
derives its predicate views in Python, and every attribute read afterwards passes through
lazy-model's Python `__getattribute__`. In bench/exchange.py's COCO export that was about a quarter
of the server's CPU.

A twin (`lean(Model)`) has the document's fields and the class's own methods, and nothing of
Beanie: it cannot be saved or re-fetched, and reading it is reading plain attributes. Its ObjectIds
are checked as instances (pydantic's core does that without calling Python; a raw document holds
ObjectIds, and anything else still goes through the original validator), and its stored JSON
values read as `JsonText` (the text alone: what `decode` reads; the views are for the database's
predicates; a live subscription's filter, which evaluates them, gets its events from the
services). What changes a document loads it itself, as a Beanie document.
"""

from __future__ import annotations

import copy
import types
import typing
from functools import cache
from typing import Annotated, Any, ClassVar, TypeVar

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import core_schema

from documents.json_value import JsonText, StoredJson

D = TypeVar("D", bound=Document)


class _LeanObjectId:
    """An ObjectId field of a twin: an instance passes as it is; anything else as PydanticObjectId would."""

    @classmethod
    def __get_pydantic_core_schema__(cls, _: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [core_schema.is_instance_schema(ObjectId), handler.generate_schema(PydanticObjectId)],
            mode="left_to_right",
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


def _swap(annotation: Any) -> Any:
    """`annotation` with PydanticObjectId and StoredJson replaced, through unions, lists and dicts."""
    if annotation is PydanticObjectId:
        return _LeanObjectId
    if annotation is StoredJson:
        return JsonText
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if not args:
        return annotation
    if origin is Annotated:
        return Annotated[(_swap(args[0]), *annotation.__metadata__)]
    swapped = tuple(_swap(arg) for arg in args)
    if swapped == args:
        return annotation
    if origin in (typing.Union, types.UnionType):
        return typing.Union[swapped]  # noqa: UP007 (a tuple of members: only Union takes one)
    return origin[swapped]


def _own_methods(model: type[Document]) -> dict[str, Any]:
    """The functions and properties the document's own classes define (not Beanie's or pydantic's)."""
    methods: dict[str, Any] = {}
    for cls in reversed(model.__mro__[:model.__mro__.index(Document)]):
        for name, value in vars(cls).items():
            if not name.startswith(("_", "model_")) and name not in model.model_fields \
                    and isinstance(value, (types.FunctionType, property, classmethod, staticmethod)):
                methods[name] = value
    return methods


@cache
def lean(model: type[D]) -> type[D]:
    """The read-only twin of a Beanie document class (see the module docstring); made once per class."""
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotations[name] = _swap(field.annotation)
        twin_field = copy.copy(field)
        twin_field.annotation = annotations[name]
        namespace[name] = twin_field
    namespace |= _own_methods(model)
    namespace["__annotations__"] = annotations | {"document_class": ClassVar[type]}
    namespace["document_class"] = model
    namespace["model_config"] = ConfigDict(**{**model.model_config, "arbitrary_types_allowed": True})
    namespace["__module__"] = model.__module__
    return typing.cast(type[D], type(f"Lean{model.__name__}", (BaseModel,), namespace))
