"""The package's dependencies point one way (a plain AST scan of every import, no extra tool).

``cli -> (optimize, evaluation, interact, gitops, lint, scaffold) -> (agent, tracing)
-> (context, cheatsheet, models) -> agents (the plug-in protocol) -> config -> foundation``.
Imports within one layer are allowed; nothing imports ``cli``; ``context`` and
``cheatsheet`` never import LangGraph; ``agent`` never imports ``optimize``
(learning is handed in); the package never imports a concrete agent.
Every import counts, also function-local and ``TYPE_CHECKING`` ones: a
type-only upward import is still a dependency a reader must follow.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "selfheal"

#: component -> layer (higher may import lower or equal, never higher)
LAYERS: dict[str, int] = {
    "cli": 6,
    "optimize": 5, "evaluation": 5, "interact": 5, "gitops": 5, "lint": 5, "scaffold": 5, "maintenance": 5,
    "agent": 4, "tracing": 4,
    "context": 3, "cheatsheet": 3, "models": 3,
    "agents": 2,
    "config": 1,
    "redact": 1,
    "errors": 0, "yamlio": 0, "tokens": 0, "filecache": 0, "versioning": 0, "timespec": 0,
    "owner": 0, "scratch": 0, "journal": 0, "cron": 0,
}  # fmt: skip
#: (importer, imported) pairs forbidden even though the layers would allow them
FORBIDDEN_PAIRS = {("agent", "optimize")}
#: third-party packages a component must not import
FORBIDDEN_EXTERNAL = {"context": {"langgraph"}, "cheatsheet": {"langgraph"}}
#: concrete agents: plug-ins, never imported by the package
CONCRETE_AGENTS = {"lambda_ops", "sql_analyst"}


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "selfheal":  # from selfheal import x: x may be a subpackage
                names = [a.name for a in node.names if a.name != "__version__"]
                if any(n not in LAYERS for n in names):  # a name of the public facade
                    out.append((node.lineno, node.module))
                out.extend((node.lineno, f"selfheal.{n}") for n in names if n in LAYERS)
            else:
                out.append((node.lineno, node.module))
    return out


def component_of(rel: Path) -> str | None:
    """``cli/main.py`` -> ``cli``; ``config.py`` -> ``config``; the package's ``__init__`` -> None."""
    parts = rel.parts
    if len(parts) == 1:
        stem = parts[0].removesuffix(".py")
        return None if stem in ("__init__", "__main__") else stem
    return parts[0]


def check_source(component: str, source: str, file: str) -> list[Violation]:
    """Every layering rule one module (of ``component``) breaks."""
    found: list[Violation] = []
    for line, module in _imports(ast.parse(source)):
        parts = module.split(".")
        top = parts[0]
        if top in CONCRETE_AGENTS:
            found.append(Violation(file, line, f"imports the concrete agent '{module}'"))
        if top in FORBIDDEN_EXTERNAL.get(component, set()):
            found.append(Violation(file, line, f"{component} imports {top}"))
        if top != "selfheal":
            continue
        if len(parts) == 1:
            found.append(Violation(file, line, "imports the public facade 'selfheal' from inside the package"))
            continue
        target = parts[1]
        if target == component:
            continue
        if target == "cli":
            found.append(Violation(file, line, f"{component} imports cli"))
        elif (component, target) in FORBIDDEN_PAIRS:
            found.append(Violation(file, line, f"{component} imports {target}"))
        elif target not in LAYERS:
            found.append(Violation(file, line, f"imports '{module}', a component with no layer (add it to LAYERS)"))
        elif LAYERS[target] > LAYERS[component]:
            found.append(
                Violation(file, line, f"upward import: {component} (layer {LAYERS[component]}) imports"
                                      f" {target} (layer {LAYERS[target]})")
            )  # fmt: skip
    return found


def scan_package(root: Path = PACKAGE) -> list[Violation]:
    found: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        component = component_of(rel)
        if component is None:
            continue
        if component not in LAYERS:
            found.append(Violation(str(rel), 1, f"component '{component}' has no layer (add it to LAYERS)"))
            continue
        found.extend(check_source(component, path.read_text(encoding="utf-8"), f"selfheal/{rel}"))
    return found


def test_the_package_imports_one_way() -> None:
    assert [str(v) for v in scan_package()] == []


def test_every_component_has_a_layer() -> None:
    components = {component_of(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")} - {None}
    assert components <= set(LAYERS)


@pytest.mark.parametrize(
    ("component", "source", "expected"),
    [
        ("cheatsheet", "from selfheal.tracing.redact import Redactor\n", "upward import: cheatsheet (layer 3)"),
        ("agent", "def f():\n    from selfheal.optimize.online import learn_from_run\n", "agent imports optimize"),
        ("config", "import selfheal.models.providers\n", "upward import: config (layer 1)"),
        ("optimize", "from selfheal.cli.main import cli\n", "optimize imports cli"),
        ("context", "from langgraph.graph import StateGraph\n", "context imports langgraph"),
        ("evaluation", "from lambda_ops.aws import SimulatedAccount\n", "concrete agent 'lambda_ops.aws'"),
        ("agent", "from selfheal import get_agent\n", "public facade"),
        ("models", "from selfheal import agent\n", "upward import: models (layer 3) imports agent"),
    ],
)
def test_a_synthetic_module_breaking_a_rule_is_caught(component: str, source: str, expected: str) -> None:
    violations = check_source(component, source, "synthetic.py")
    assert violations, f"not caught: {source!r}"
    assert expected in str(violations[0])


def test_a_synthetic_package_with_an_upward_import_fails_the_scan(tmp_path: Path) -> None:
    (tmp_path / "cheatsheet").mkdir()
    (tmp_path / "cheatsheet" / "store.py").write_text("import json\nfrom selfheal.config import Settings\n")
    assert scan_package(tmp_path) == []
    (tmp_path / "cheatsheet" / "store.py").write_text("from selfheal.evaluation.runner import run_experiment\n")
    assert [str(v) for v in scan_package(tmp_path)] == [
        "selfheal/cheatsheet/store.py:1: upward import: cheatsheet (layer 3) imports evaluation (layer 5)"
    ]


def test_allowed_imports_pass() -> None:
    ok = "from selfheal.agent.runner import run_task\nfrom selfheal.tracing.store import LocalTraceStore\n"
    assert check_source("evaluation", ok, "x.py") == []
