"""The benchmarks reach the system through its interfaces (REST, gRPC, SQL, the launcher
and the shared lib), not the services' internals: the one exception is peer.py's use of
the runner's executor, which it states at its top."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
SERVICES = ("jobsched_scheduler", "jobsched_gateway", "jobsched_runner")
DECLARED = {("peer.py", "jobsched_runner.execute")}


def imported_modules(source: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_benchmarks_import_no_service_internals_but_the_declared_one() -> None:
    scripts = sorted(BENCH.glob("*.py"))
    assert scripts
    reached = {
        (script.name, module)
        for script in scripts
        for module in imported_modules(script)
        if module.split(".")[0] in SERVICES
    }
    assert reached == DECLARED
    for script, module in DECLARED:
        docstring = ast.get_docstring(ast.parse((BENCH / script).read_text())) or ""
        assert module in docstring, script
