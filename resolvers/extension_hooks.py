"""Strawberry's schema-extension hooks, looked up once per extension class instead of per operation.

For every operation Strawberry asks each extension, for each of its four stages (operation, parse,
validate, execute), whether it overrides the hook, whether that is a generator function, and wraps
the bound method in a fresh `contextlib.contextmanager` (functools.wraps included). With the dozen
extensions this schema runs (resolvers/schema.py) that was a tenth of the server's CPU on a by-id
read. The answers depend on the class alone, so they are kept here per (class, stage), and each
operation only binds the kept context-manager factory to its extension instance: the same
`contextlib` context manager, the same order, the same semantics. Hooks that are plain callables
(none here today) and stream results keep Strawberry's own path.

Likewise each result (every answer, and every message of every subscription) asked each extension
for its `get_results` and awaited it, though none of this schema's overrides it: 5% of a process's
CPU while it streamed events to 200 subscribers. Only the classes that override it are asked now.
"""

from __future__ import annotations

import contextlib
import inspect
from functools import cache, partial
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


@cache
def _gives_results(cls: type[SchemaExtension]) -> bool:
    """Whether an extension class overrides `get_results` (the base's gives `{}`)."""
    return cls.get_results is not SchemaExtension.get_results


class KeptHooksRunner(SchemaExtensionsRunner):
    """Strawberry's runner, with the four stages' hooks looked up as above, and results asked only
    of the extensions that give any."""

    def get_extensions_results_sync(self) -> dict[str, Any]:
        return self._with_results().get_extensions_results_sync()

    async def get_extensions_results(self, ctx: Any) -> dict[str, Any]:
        return await self._with_results().get_extensions_results(ctx)

    def _with_results(self) -> SchemaExtensionsRunner:
        """Strawberry's own runner over the extensions that give results: its checks and order."""
        return SchemaExtensionsRunner(execution_context=self.execution_context,
                                      extensions=[e for e in self.extensions if _gives_results(type(e))])

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)

