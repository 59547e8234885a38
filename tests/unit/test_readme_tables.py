"""The README's reference tables say what the code does: each setting's default, and the metrics
/metrics exports with their labels (tests/unit/test_deployment.py checks that every setting has a row)."""

from __future__ import annotations

import re
from pathlib import Path

from graphlake import PROJECT_ROOT
from graphlake.settings import Settings
from services.metrics import Metrics

README = (PROJECT_ROOT / "README.md").read_text()


def section(start: str, end: str) -> str:
    return README[README.index(start):README.index(end, README.index(start))]


def shown(value: object) -> str:
    """A default as the README writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Path):  # the install's own directories are named from its root
        return str(value.relative_to(PROJECT_ROOT)) if value.is_absolute() else str(value)
    if isinstance(value, dict):
        return "{}" if not value else repr(value)
    return str(value)


def test_the_configuration_table_gives_each_settings_default() -> None:
    rows = dict(re.findall(r"^\| `GRAPHLAKE_(\w+)` \| ([^|]*) \|",
                           section("## Configuration", "## Operating Graphlake"), flags=re.M))
    wrong = {}
    for name, field in Settings.model_fields.items():
        default, cell = field.get_default(call_default_factory=True), rows[name.upper()].strip()
        if default is None or default == []:
            # Unset: the row says so, or what is used instead (`<data_dir>/backups`), never a bare value.
            assert cell, name
            continue
        written = re.match(r"`([^`]*)`", cell)
        if written is None or written.group(1) != shown(default):
            wrong[name] = (cell, shown(default))
    assert not wrong, f"README default differs from the code's (README, code): {wrong}"


def test_the_metrics_table_lists_what_metrics_exports_with_its_labels() -> None:
    table = section("Each process keeps its own counts (scrape every process). The metrics:", "Operation names are")
    documented = {}
    for name, labels in re.findall(r"^\| `(graphlake_\w+)` \|([^|]*)\|", table, flags=re.M):
        # Label names are the backticked words outside parentheses (inside are their values).
        documented[name] = set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels)))
    assert len(documented) > 10, "the table's rows were not found: the pattern checks nothing"
    metrics = Metrics(process=False)
    exported = {}
    for attribute in vars(metrics).values():
        if hasattr(attribute, "_labelnames"):  # a prometheus_client metric
            suffix = "_total" if attribute._type == "counter" else ""
            exported[attribute._name + suffix] = set(attribute._labelnames)
    # Each metric held here with the labels it is shown with. Those a collector yields as it is
    # scraped (the request slots') are not held here: tests/test_metrics.py checks every name the
    # running server exposes against the table.
    assert {name: documented.get(name) for name in exported} == exported
    assert "`process_*`, `python_*`" in table  # the process collectors, on unless a test turns them off
