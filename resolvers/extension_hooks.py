"""Strawberry's schema-extension hooks, looked up once per extension class instead of per operation.

For every operation Strawberry asks each extension, for each of its four stages (operation, parse,
validate, execute), whether it overrides the hook, whether that is a generator function, and wraps
the bound method in a fresh `contextlib.contextmanager` (functools.wraps included). With the dozen
extensions this schema runs (resolvers/schema.py) that was a tenth of the server's CPU on a by-id
read. The answers depend on the class alone, so they are kept here per (class, stage), and each
operation only binds the kept context-manager factory to its extension instance: the same
`contextlib` context manager, the same order, the same semantics. Hooks that are plain callables
(none here today) and stream results keep Strawberry's own path.
"""

from __future__ import annotations

import contextlib
import inspect
from functools import partial
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

_NOT_OVERRIDDEN = object()
_PLAIN = object()  # a hook that is not a generator: Strawberry's own get_hook wraps it
_found: dict[tuple[type, str], Any] = {}


def _lookup(cls: type, stage: str) -> Any:
    hook = getattr(cls, stage)
    if hook is getattr(SchemaExtension, stage):
        return _NOT_OVERRIDDEN
    if inspect.isgeneratorfunction(hook):
        return contextlib.contextmanager(hook), False
    if inspect.isasyncgenfunction(hook):
        return contextlib.asynccontextmanager(hook), True
    return _PLAIN


class _KeptHooks(ExtensionContextManagerBase):
    __slots__ = ()

    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        key = (type(extension), self.HOOK_NAME)
        found = _found.get(key)
        if found is None:
            found = _found[key] = _lookup(*key)
        if found is _NOT_OVERRIDDEN:
            return None
        if found is _PLAIN:
            return super().get_hook(extension)
        factory, is_async = found
        return WrappedHook(extension=extension, hook=partial(factory, extension), is_async=is_async)


class _Operation(_KeptHooks, OperationContextManager):
    __slots__ = ()


class _Validation(_KeptHooks, ValidationContextManager):
    __slots__ = ()


class _Parsing(_KeptHooks, ParsingContextManager):
    __slots__ = ()


class _Executing(_KeptHooks, ExecutingContextManager):
    __slots__ = ()


class KeptHooksRunner(SchemaExtensionsRunner):
    """Strawberry's runner, with the four stages' hooks looked up as above."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)

