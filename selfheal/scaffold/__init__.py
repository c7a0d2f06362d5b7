"""``selfheal init``: scaffold selfheal's files into an existing agent repository.

Templates ship as package data (``selfheal/scaffold/templates``). Nothing that
exists is overwritten: existing files are reported as kept; CODEOWNERS and
.gitignore only get the lines they miss.

An agent that is not installed (no ``selfheal.agents`` entry point of that
name) gets a runnable starter: ``<agent>_agent.py`` at the repository root (a
plug-in with real LangChain tools and a verifier), referenced as
``agent_factory`` in selfheal.yaml, and two scenario files for its dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from selfheal.cheatsheet.model import SECTIONS
from selfheal.errors import SelfhealError
from selfheal.yamlio import atomic_write_text

AGENT_PLACEHOLDER = "__AGENT__"
EXAMPLE_ENTRY = "heur-example-read-before-write.yaml"
#: What the workflows install while selfheal is not on PyPI: the user names the repository and ref.
PLACEHOLDER_SPEC = "selfheal @ git+https://github.com/YOUR-ORG/selfheal@main"
REQUIREMENTS = ".github/selfheal-requirements.txt"


@dataclass
class ScaffoldReport:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)      # existed already, left byte-identical
    appended: list[str] = field(default_factory=list)  # CODEOWNERS / .gitignore lines added
    notes: list[str] = field(default_factory=list)     # what the user still has to do by hand


def template(name: str) -> str:
    """A template's text from the installed package."""
    return resources.files("selfheal.scaffold").joinpath("templates", name).read_text(encoding="utf-8")


def default_selfheal_spec() -> str:
    """The pip requirement that installs the selfheal running now, for the CI workflows.

    From a git URL: that URL at the installed commit; from an index: that
    version, pinned; from a local checkout: a placeholder the user edits (the
    workflows refuse it with a one-line message naming the file).
    """
    import json
    from importlib import metadata
    from pathlib import Path

    # Several may be visible: an editable install's dist-info (with direct_url.json) and the
    # egg-info setuptools leaves in the checkout itself (without one). The install record wins.
    dists = list(metadata.distributions(name="selfheal"))
    for dist in dists:
        try:
            direct = json.loads(dist.read_text("direct_url.json") or "null")
        except ValueError:
            direct = None
        if not direct:
            continue
        vcs = direct.get("vcs_info") or {}
        if vcs.get("vcs") == "git" and direct.get("url"):
            ref = vcs.get("commit_id") or vcs.get("requested_revision")
            return f"selfheal @ git+{direct['url']}" + (f"@{ref}" if ref else "")
        return PLACEHOLDER_SPEC  # a local directory or file
    for dist in dists:  # metadata inside a source checkout: a local install too
        if (Path(str(dist.locate_file(""))) / "pyproject.toml").is_file():
            return PLACEHOLDER_SPEC
    return f"selfheal=={dists[0].version}" if dists else PLACEHOLDER_SPEC


def requirements_file(spec: str) -> str:
    """``.github/selfheal-requirements.txt``: the selfheal the workflows install (also pip's cache key)."""
    return (
        "# The selfheal the CI workflows install (selfheal-eval.yml, selfheal-optimize.yml):\n"
        "# a release (selfheal==X.Y.Z) or a git ref (selfheal @ git+https://github.com/ORG/selfheal@TAG).\n"
        "# The workflows add the extra the model needs ([local] when the repository has no\n"
        "# OPENAI_API_KEY secret); pip's cache between runs is keyed by this file.\n"
        f"{spec}\n"
    )


def starter_module(agent: str) -> str:
    """The starter plug-in's module name: ``support-bot`` -> ``support_bot_agent``."""
    return agent.replace("-", "_") + "_agent"


def _installed(agent: str) -> bool:
    from selfheal.agents.registry import entry_point_sources

    return agent in entry_point_sources()


def _configured_agent(root: Path) -> str | None:
    """The agent an existing selfheal.yaml names (None without one, or when it cannot be read)."""
    from selfheal.yamlio import read_yaml

    try:
        raw = read_yaml(root / "selfheal.yaml")
    except Exception:
        return None
    agent = raw.get("agent") if hasattr(raw, "get") else None
    return str(agent) if agent else None


def _plan(agent: str, *, starter: bool, cheatsheet: str = "cheatsheet",
          selfheal_spec: str = PLACEHOLDER_SPEC) -> list[tuple[str, str]]:
    """(repo-relative path, content) of every file init creates when missing."""
    module = starter_module(agent)

    def t(name: str) -> str:
        return template(name).replace(AGENT_PLACEHOLDER, agent).replace("__MODULE__", module)

    factory = f"agent_factory: {module}:make_agent   # the starter plug-in in {module}.py\n" if starter else ""
    files = [
        ("selfheal.yaml", t("selfheal.yaml").replace("__AGENT_FACTORY__", factory)),
        (f"prompts/{agent}/context.yaml", t("context.yaml")),
        (f"prompts/{agent}/system.md.j2", t("system.md.j2")),
        (f"evals/{agent}/dataset.yaml", t("dataset.yaml")),
        (f"evals/{agent}/examples/example.yaml", t("example.yaml")),
        (".github/workflows/selfheal-eval.yml", t("selfheal-eval.yml")),
        (".github/workflows/selfheal-optimize.yml", t("selfheal-optimize.yml")),
        (REQUIREMENTS, requirements_file(selfheal_spec)),
    ]
    files += [(f"{cheatsheet}/{section}/.gitkeep", "") for section in SECTIONS]
    files.append((f"{cheatsheet}/heuristics/{EXAMPLE_ENTRY}", t(EXAMPLE_ENTRY)))
    if starter:
        files.append((f"{module}.py", t("agent.py.tmpl")))
        files.append((f"evals/{agent}/scenarios/refund-order-123.yaml", t("scenario-1.yaml")))
        files.append((f"evals/{agent}/scenarios/cancel-order-77.yaml", t("scenario-2.yaml")))
    return files


def _append_lines(path: Path, lines: list[str], header: str) -> bool:
    """Add the lines ``path`` lacks (compared ignoring surrounding space); False when none were missing."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    have = {" ".join(line.split()) for line in text.splitlines()}
    missing = [line for line in lines if " ".join(line.split()) not in have]
    if not missing:
        return False
    prefix = text if not text or text.endswith("\n") else text + "\n"
    sep = "\n" if prefix.strip() else ""
    atomic_write_text(path, prefix + sep + header + "\n" + "\n".join(missing) + "\n")
    return True


def _codeowners_path(root: Path) -> Path:
    """Where this repository keeps CODEOWNERS (GitHub looks in .github/, the root, docs/)."""
    for rel in (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"):
        if (root / rel).is_file():
            return root / rel
    return root / ".github" / "CODEOWNERS"


def scaffold(root: Path, agent: str, *, owner: str = "@owner", missing_only: bool = False,
             selfheal_spec: str | None = None) -> ScaffoldReport:
    """Create selfheal's files under ``root``; refuse an initialised repo unless ``missing_only``.

    ``selfheal_spec``: the pip requirement the CI workflows install (default:
    :func:`default_selfheal_spec`).
    """
    spec = (selfheal_spec or default_selfheal_spec()).strip()
    if not spec or "\n" in spec:
        raise SelfhealError("--selfheal-spec: give one pip requirement, e.g. 'selfheal==0.2.0' or "
                            "'selfheal @ git+https://github.com/ORG/selfheal@TAG'")
    root = Path(root)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", agent):
        raise SelfhealError(f"agent '{agent}': use letters, digits, _ or - (it names prompts/<agent>/)")
    if not re.fullmatch(r"@[\w.-]+(/[\w.-]+)?|[^@\s]+@[^@\s]+", owner):
        raise SelfhealError(f"owner '{owner}': give @user, @org/team or an email address")
    if not root.is_dir():
        raise SelfhealError(f"{root}: no such directory")
    if (root / "selfheal.yaml").exists() and not missing_only:
        raise SelfhealError(
            f"{root / 'selfheal.yaml'} exists: selfheal is set up here already "
            "(--force-missing-only adds only the files that are missing)"
        )
    report = ScaffoldReport()
    starter = not _installed(agent)
    existing = _configured_agent(root) if (root / "selfheal.yaml").exists() else None
    # A second agent in a repository set up already gets its own cheatsheet/<agent>/.
    cheatsheet = f"cheatsheet/{agent}" if existing and existing != agent else "cheatsheet"
    for rel, content in _plan(agent, starter=starter, cheatsheet=cheatsheet, selfheal_spec=spec):
        path = root / rel
        if path.exists():
            report.kept.append(rel)
            continue
        atomic_write_text(path, content)
        report.created.append(rel)
    owners = _codeowners_path(root)
    existed = owners.exists()
    if _append_lines(owners, [f"/prompts/ {owner}", f"/cheatsheet/ {owner}"],
                     "# selfheal: the agent's context and cheatsheet are reviewed by"):
        (report.appended if existed else report.created).append(owners.relative_to(root).as_posix())
    else:
        report.kept.append(owners.relative_to(root).as_posix())
    if existing and existing != agent:
        run = f"selfheal --agent {agent} run"
        if starter:
            report.notes.append(
                f"selfheal.yaml runs '{existing}': add `agent_factory: {{{agent}: {starter_module(agent)}:make_agent}}`"
                f" (keep {existing}'s own) and use `{run} ...`"
            )
        else:
            report.notes.append(f"selfheal.yaml runs '{existing}': use `{run} ...` for {agent}")
    if REQUIREMENTS in report.created and spec == PLACEHOLDER_SPEC:
        report.notes.append(f"{REQUIREMENTS}: replace YOUR-ORG/main with the selfheal repository and tag the "
                            "workflows should install (or rerun init with --selfheal-spec)")
    ignore = root / ".gitignore"
    existed = ignore.exists()
    if _append_lines(ignore, [".selfheal/"], "# selfheal: local traces, caches, state and PR bodies"):
        (report.appended if existed else report.created).append(".gitignore")
    else:
        report.kept.append(".gitignore")
    return report
