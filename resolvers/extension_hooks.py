"""Strawberry's schema-extension hooks, looked up once per extension class and run as plain generators.

For every operation Strawberry asks each extension, for each of its four stages (operation, parse,
validate, execute), whether it overrides the hook and whether that is a generator function, wraps
the bound method in a fresh `contextlib` context manager and enters it on an exit stack. With the
dozen extensions this schema runs (resolvers/schema.py: sixteen hooks per operation) the lookups
were a tenth of the server's CPU on a by-id read, and the wrapping and the exit stacks about a fifth
of an empty query's. The answers depend on the class alone, so they are kept here per (class,
stage); each stage then starts its hooks' generators itself and, when it ends without an exception
(nearly always), resumes them in reverse order. Anything else (an exception passing through, a hook
raising or yielding twice) unwinds the hooks not yet ended through `contextlib`'s own context
managers and exit stack, so errors surface exactly as Strawberry's runner lets them (a test runs
the same hooks on both). A hook that is a plain function runs as Strawberry runs it: before the
stage. Stream results keep Strawberry's own path.

Likewise each result (every answer, and every message of every subscription) asked each extension
for its `get_results` and awaited it, though none of this schema's overrides it: 5% of a process's
CPU while it streamed events to 200 subscribers. Only the classes that override it are asked now.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from functools import cache
from types import TracebackType
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

# A stage's hook of one class: the generator function to call with the extension, and whether it is async.
_Hook = tuple[Callable[[SchemaExtension], Any], bool]


@cache
def _lookup(cls: type, stage: str) -> _Hook | None:
    """The class's hook for `stage` as a generator function; None when it does not override it."""
    hook = getattr(cls, stage)
    if hook is getattr(SchemaExtension, stage):
        return None
    if inspect.isgeneratorfunction(hook):
        return hook, False
    if inspect.isasyncgenfunction(hook):
        return hook, True
    if not callable(hook):
        raise ValueError(f"Hook {stage} on {cls.__name__} must be callable, received {hook!r}")
    if inspect.iscoroutinefunction(hook):  # Strawberry awaits a plain hook as the stage starts
        async def awaited(extension: SchemaExtension) -> AsyncGenerator[None, None]:
            await hook(extension)
            yield

        return awaited, True

    def called(extension: SchemaExtension) -> Generator[None, None, None]:
        hook(extension)
        yield

    return called, False


def _started(generator: Generator | AsyncGenerator) -> Generator | AsyncGenerator:
    """Gives contextlib's context managers a generator already run to its yield (see _Stage._unwind)."""
    return generator


class _Stage:
    """One stage's hooks for one operation, entered and exited as Strawberry's context managers are."""

    __slots__ = ("hooks", "running")
    HOOK_NAME: str

    def __init__(self, extensions: list[SchemaExtension],
                 plan: tuple[tuple[int, Callable[[SchemaExtension], Any], bool], ...] | None = None) -> None:
        if plan is None:
            plan = _plan(tuple(map(type, extensions))).stages[self.HOOK_NAME]
        self.hooks = [(extensions[index], hook, is_async) for index, hook, is_async in plan]
        self.running: list[tuple[Any, bool]] = []  # the hooks' started generators, in order

    # Entering: each hook runs to its yield, in order. One that raises stops the stage there, and the
    # hooks already started are left unfinished, as Strawberry's runner leaves them.

    async def __aenter__(self) -> None:
        for extension, hook, is_async in self.hooks:
            generator = hook(extension)
            try:
                await anext(generator) if is_async else next(generator)
            except (StopIteration, StopAsyncIteration):
                raise RuntimeError("generator didn't yield") from None
            self.running.append((generator, is_async))

    def __enter__(self) -> None:
        for extension, hook, is_async in self.hooks:
            if is_async:
                raise RuntimeError(f"SchemaExtension hook {extension}.{self.HOOK_NAME} failed to complete synchronously.")
            generator = hook(extension)
            try:
                next(generator)
            except StopIteration:
                raise RuntimeError("generator didn't yield") from None
            self.running.append((generator, False))

    # Exiting without an exception: each hook runs to its end, last first. Any other case goes to
    # _unwind, from the hook where it arose.

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        running = self.running
        if exc is not None:
            await self._unwind(exc_type, exc, traceback)
            return
        while running:
            generator, is_async = running.pop()
            try:
                await anext(generator) if is_async else next(generator)
            except (StopIteration, StopAsyncIteration):
                continue
            except BaseException as error:
                if not await self._unwind(type(error), error, error.__traceback__):
                    raise
                return
            error = RuntimeError("generator didn't stop")
            if not await self._unwind(RuntimeError, error, None):
                raise error

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        running = self.running
        if exc is not None:
            self._unwind_sync(exc_type, exc, traceback)
            return
        while running:
            generator, _ = running.pop()
            try:
                next(generator)
            except StopIteration:
                continue
            except BaseException as error:
                if not self._unwind_sync(type(error), error, error.__traceback__):
                    raise
                return
            error = RuntimeError("generator didn't stop")
            if not self._unwind_sync(RuntimeError, error, None):
                raise error

    async def _unwind(self, exc_type: type[BaseException] | None, exc: BaseException,
                      traceback: TracebackType | None) -> bool:
        """Pass `exc` through the hooks still running, last first, with contextlib's semantics (its
        context managers around the started generators, on its exit stack); True if a hook suppressed it."""
        stack = contextlib.AsyncExitStack()
        for generator, is_async in self.running:
            if is_async:
                stack.push_async_exit(contextlib.asynccontextmanager(_started)(generator))
            else:
                stack.push(contextlib.contextmanager(_started)(generator))
        self.running = []
        return bool(await stack.__aexit__(exc_type, exc, traceback))

    def _unwind_sync(self, exc_type: type[BaseException] | None, exc: BaseException,
                     traceback: TracebackType | None) -> bool:
        stack = contextlib.ExitStack()
        for generator, _ in self.running:
            stack.push(contextlib.contextmanager(_started)(generator))
        self.running = []
        return bool(stack.__exit__(exc_type, exc, traceback))


class _Operation(_Stage):
    __slots__ = ()
    HOOK_NAME = OperationContextManager.HOOK_NAME


class _Validation(_Stage):
    __slots__ = ()
    HOOK_NAME = ValidationContextManager.HOOK_NAME


class _Parsing(_Stage):
    __slots__ = ()
    HOOK_NAME = ParsingContextManager.HOOK_NAME


class _Executing(_Stage):
    __slots__ = ()
    HOOK_NAME = ExecutingContextManager.HOOK_NAME


@cache
def _gives_results(cls: type[SchemaExtension]) -> bool:
    """Whether an extension class overrides `get_results` (the base's gives `{}`)."""
    return cls.get_results is not SchemaExtension.get_results


class _Plan:
    """What one list of extension classes runs, worked out once: each stage's hooks (the index of
    the extension, its hook, whether async), which extensions give results, and whether any wraps
    resolvers. The schema makes the same list of classes for every operation, and _Stage looking up
    each extension's hook per stage (a dict lookup of (class, stage) for each of eleven extensions,
    four times) was 3% of the server's CPU on `{ __typename }` (py-spy, in-process)."""

    __slots__ = ("gives_results", "resolves", "stages")

    def __init__(self, classes: tuple[type[SchemaExtension], ...]) -> None:
        self.stages: dict[str, tuple[tuple[int, Callable[[SchemaExtension], Any], bool], ...]] = {}
        for stage in (_Operation, _Validation, _Parsing, _Executing):
            name = stage.HOOK_NAME
            self.stages[name] = tuple((index, *found) for index, cls in enumerate(classes)
                                      if (found := _lookup(cls, name)) is not None)
        self.gives_results = tuple(index for index, cls in enumerate(classes) if _gives_results(cls))
        self.resolves = any(cls._implements_resolve() for cls in classes)


@cache
def _plan(classes: tuple[type[SchemaExtension], ...]) -> _Plan:
    return _Plan(classes)


def wraps_resolvers(extensions: list[SchemaExtension]) -> bool:
    """Whether any of `extensions` wraps every resolver (implements `resolve`: tracing's spans)."""
    return _plan(tuple(map(type, extensions))).resolves


class KeptHooksRunner(SchemaExtensionsRunner):
    """Strawberry's runner, with the four stages' hooks run as above, and results asked only of the
    extensions that give any."""

    def __init__(self, execution_context: Any, extensions: list[SchemaExtension] | None = None) -> None:
        super().__init__(execution_context, extensions)
        self.plan = _plan(tuple(map(type, self.extensions)))

    def get_extensions_results_sync(self) -> dict[str, Any]:
        return self._with_results().get_extensions_results_sync()

    async def get_extensions_results(self, ctx: Any) -> dict[str, Any]:
        if not self.plan.gives_results:  # what Strawberry's runner gives with no extension to ask
            return {**ctx.extensions_results}
        return await self._with_results().get_extensions_results(ctx)

    def _with_results(self) -> SchemaExtensionsRunner:
        """Strawberry's own runner over the extensions that give results: its checks and order."""
        return SchemaExtensionsRunner(execution_context=self.execution_context,
                                      extensions=[self.extensions[index] for index in self.plan.gives_results])

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions, self.plan.stages[_Operation.HOOK_NAME])  # type: ignore[return-value]

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions, self.plan.stages[_Validation.HOOK_NAME])  # type: ignore[return-value]

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions, self.plan.stages[_Parsing.HOOK_NAME])  # type: ignore[return-value]

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions, self.plan.stages[_Executing.HOOK_NAME])  # type: ignore[return-value]
