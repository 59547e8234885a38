"""The README's shell and Python examples name what exists: each `graphlake ...` line of a shell block
and each row of the command table names a real command and only options it takes, and each Python
block compiles (top-level `await`, as a notebook runs it) and calls the client's methods with keywords
they take. tests/unit/test_readme_operations.py checks the GraphQL blocks the same way; what the
examples do against a running lake is checked by hand (and, for the worked example, by
tests/test_readme_worked_example.py)."""

from __future__ import annotations

import ast
import inspect
import re
import shlex

import pytest
import typer.main

from graphlake import PROJECT_ROOT
from graphlake.cli import app
from graphlake_client import Client

README = (PROJECT_ROOT / "README.md").read_text()
SHELL = re.findall(r"^```sh\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
PYTHON = re.findall(r"^```python\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
TABLE = README[README.index("## The `graphlake` command"):README.index("Each command imports only what it runs")]
ROOT = typer.main.get_command(app)


def command_lines() -> list[str]:
    """Each `graphlake ...` command of the shell blocks, its comment left out (`id=$(graphlake ...)` too)."""
    found = []
    for block in SHELL:
        for line in block.replace("\\\n", " ").splitlines():
            code = line.split(" #", 1)[0]
            for start in re.finditer(r"(?:^|\$\(|&& )\s*(graphlake [^)&]*)", code):
                found.append(start.group(1).strip())
    return found


def table_commands() -> list[str]:
    """Each command of the command table, its `|` escapes undone (`graphlake store value ... / graphlake store text ...` apart)."""
    cells = re.findall(r"^\| `(graphlake .*?)` \| [^`]", TABLE, flags=re.MULTILINE)
    return [part.replace("\\|", "|") for cell in cells for part in cell.split("` / `")]


def check(line: str) -> None:
    """The command `line` names exists, and takes every option it gives."""
    words = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
    command = ROOT  # a group has `commands` (Typer ships its own click, whose classes are not click's)
    path = ["graphlake"]
    while hasattr(command, "commands") and words and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words.pop(0)]
    if hasattr(command, "commands") and "create" not in command.commands:
        raise AssertionError(f"{' '.join(path)} is a group: `{line}` names none of its commands {sorted(command.commands)}")
    taken = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    if hasattr(command, "commands"):  # `graphlake backup DEST --with-payloads` runs its `create`
        taken |= {name for sub in command.commands.values() for param in sub.params for name in param.opts}
    given = {word.split("=", 1)[0] for word in words if word.startswith("-") and word != "-"}
    assert given <= taken, f"{' '.join(path)} takes no {sorted(given - taken)} (`{line}`)"


def test_the_readme_has_commands_and_python_blocks() -> None:
    assert len(command_lines()) >= 40 and len(table_commands()) >= 30 and len(PYTHON) >= 10


@pytest.mark.parametrize("line", command_lines())
def test_a_shell_example_names_a_real_command_and_its_options(line: str) -> None:
    check(line)


@pytest.mark.parametrize("line", table_commands())
def test_a_command_table_row_names_a_real_command_and_its_options(line: str) -> None:
    check(line)


@pytest.mark.parametrize("block", PYTHON, ids=[f"block{n}" for n in range(len(PYTHON))])
def test_a_python_block_compiles_and_calls_the_client_as_it_is(block: str) -> None:
    tree = compile(block, "README", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    for call in ast.walk(tree) if "httpx.Client" not in block else ():  # that block's `lake` is httpx's
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name) and call.func.value.id in ("lake", "other_lake")):
            continue
        method = getattr(Client, call.func.attr, None)
        assert method is not None, f"Client has no {call.func.attr}:\n{block}"
        parameters = inspect.signature(method).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            continue
        unknown = {k.arg for k in call.keywords if k.arg is not None} - set(parameters)
        assert not unknown, f"Client.{call.func.attr} takes no {sorted(unknown)}:\n{block}"
    # A block that uses Path, or calls Client, says where it comes from when it imports anything at all.
    imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    if imported:
        assert not ({"Path", "Client", "SyncClient"} & used) - imported, f"a block that imports misses some:\n{block}"
