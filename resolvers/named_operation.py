"""A document of several operations runs the one `operationName` names, as the GraphQL spec says.

Without a name the spec makes it a request error. graphql-core raises one, but Strawberry's
execution context answers the first operation's name when the request gave none, so a client that
forgot the name would run an operation it may not have meant (a mutation, say). This extension
restores the rule, reading the name the request gave (resolvers/internals.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ExecutionResult, GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from resolvers.internals import provided_operation_name
from services.errors import BadUserInput


class NamedOperation(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and provided_operation_name(context) is None:
            if sum(isinstance(d, OperationDefinitionNode) for d in document.definitions) > 1:
                problem = BadUserInput("the document holds several operations: name the one to run", field="operationName")
                context.result = ExecutionResult(data=None, errors=[GraphQLError(str(problem), original_error=problem)])
        yield
