"""graphql-schema-linter's description rules pass on the committed schema (the unit test checks the same
from the code; this runs the linter that schema tooling outside the project uses, from npm)."""

from __future__ import annotations

import shutil
import subprocess

from graphlake import PROJECT_ROOT

DESCRIPTION_RULES = (
    "types-have-descriptions", "fields-have-descriptions", "arguments-have-descriptions",
    "enum-values-have-descriptions", "input-object-values-have-descriptions",
)


def test_graphql_schema_linter_description_rules_pass() -> None:
    node = shutil.which("node")
    linter = PROJECT_ROOT / "assets" / "node_modules" / "graphql-schema-linter" / "lib" / "cli.js"
    assert node and linter.is_file(), "make installs Node.js packages into assets/node_modules"
    result = subprocess.run(
        [node, str(linter), "--rules", ",".join(DESCRIPTION_RULES), "--format", "compact",
         str(PROJECT_ROOT / "graphql" / "schema.graphql")],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
