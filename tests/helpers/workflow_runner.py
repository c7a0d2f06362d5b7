"""Run a GitHub Actions job's ``run:`` steps in order, locally, the way a hosted runner would.

Each ``run:`` script is executed with ``bash -e`` (Actions' default shell) in a
workspace the test prepared (the checkout), with the runner's variables
(``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``, ``GITHUB_ENV``, ``GITHUB_REPOSITORY``,
...) and ``${{ }}`` expressions evaluated against a small context (github,
secrets, inputs, env, steps, runner). ``uses:`` steps are skipped and recorded:
actions are GitHub's code, not the workflow's. ``if:`` conditions follow Actions'
rules: an implicit ``success()``, ``always()``, ``continue-on-error``.

Expressions support what workflows use: literals, property paths, ``!``,
``==``/``!=``, ``&&``/``||`` (returning operands, as Actions does), parentheses,
``always()``/``success()``/``failure()``/``cancelled()`` and
``hashFiles(path)``. An unknown context or function raises, so a workflow
that grows a new expression fails its test instead of being guessed at.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_*][\w-]*)*))"
)
_STATUS = {"always", "success", "failure", "cancelled"}


@dataclass
class StepResult:
    name: str
    ran: bool
    uses: str | None = None
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""


@dataclass
class JobResult:
    steps: list[StepResult]
    failed: bool
    summary: str

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)


def step_name(step: dict[str, Any]) -> str:
    return str(step.get("name") or step.get("uses") or str(step.get("run", "")).splitlines()[0])


class Expressions:
    """Evaluates ``${{ }}`` expressions against a context (see the module docstring)."""

    def __init__(self, context: dict[str, Any], workspace: Path) -> None:
        self.context = context
        self.workspace = workspace
        self.job_failed = False

    # -- values ------------------------------------------------------------------------
    def lookup(self, path: str) -> Any:
        head, *rest = path.split(".")
        if head in ("true", "false", "null") and not rest:
            return {"true": True, "false": False, "null": None}[head]
        if head not in self.context:
            raise KeyError(f"unknown expression context '{head}' in '{path}'")
        value: Any = self.context[head]
        for part in rest:
            value = value.get(part) if isinstance(value, dict) else None
        return value if value is not None else ("" if head in ("secrets", "inputs", "steps", "env") else None)

    def call(self, name: str, args: list[Any]) -> Any:
        if name in _STATUS:
            return {"always": True, "success": not self.job_failed, "failure": self.job_failed,
                    "cancelled": False}[name]
        if name == "hashFiles":
            found = [p for a in args for p in sorted(self.workspace.glob(str(a))) if p.is_file()]
            return "" if not found else "h" + str(abs(hash(tuple(p.read_bytes() for p in found))))
        if name == "format":  # GitHub's format('{0} and {1}', a, b); '{{' and '}}' are literal braces
            text = str(args[0]).replace("{{", "\0").replace("}}", "\1")
            for i, arg in enumerate(args[1:]):
                text = text.replace("{" + str(i) + "}", "" if arg is None else str(arg))
            return text.replace("\0", "{").replace("\1", "}")
        raise KeyError(f"unknown expression function '{name}'")

    # -- parsing (recursive descent: or > and > equality > unary > primary) --------------
    def evaluate(self, text: str) -> Any:
        tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ValueError(f"cannot parse expression at {text[pos:]!r}")
            kind = m.lastgroup or ""
            tokens.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self._tokens, self._i = tokens, 0
        value = self._or()
        if self._i != len(tokens):
            raise ValueError(f"trailing tokens in expression {text!r}")
        return value

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._i] if self._i < len(self._tokens) else None

    def _take(self) -> tuple[str, str]:
        tok = self._tokens[self._i]
        self._i += 1
        return tok

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == ("op", "||"):
            self._take()
            right = self._and()
            left = left if _truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._eq()
        while self._peek() == ("op", "&&"):
            self._take()
            right = self._eq()
            left = right if _truthy(left) else left
        return left

    def _eq(self) -> Any:
        left = self._unary()
        while self._peek() in (("op", "=="), ("op", "!=")):
            op = self._take()[1]
            right = self._unary()
            same = _loose(left) == _loose(right)
            left = same if op == "==" else not same
        return left

    def _unary(self) -> Any:
        if self._peek() == ("op", "!"):
            self._take()
            return not _truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, value = self._take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value)
        if kind == "op" and value == "(":
            inner = self._or()
            self._take()
            return inner
        if kind == "name":
            if self._peek() == ("op", "("):
                self._take()
                args: list[Any] = []
                while self._peek() != ("op", ")"):
                    args.append(self._or())
                    if self._peek() == ("op", ","):
                        self._take()
                self._take()
                return self.call(value, args)
            return self.lookup(value)
        raise ValueError(f"unexpected token {value!r}")

    # -- interpolation -----------------------------------------------------------------------
    def interpolate(self, text: str) -> str:
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _as_string(self.evaluate(m.group(1))), str(text))

    def condition(self, text: str | None) -> bool:
        if text is None or text == "":
            return not self.job_failed
        expr = str(text).strip()
        if expr.startswith("${{") and expr.endswith("}}"):
            expr = expr[3:-2]
        if not re.search(r"\b(always|success|failure|cancelled)\(", expr):
            if self.job_failed:
                return False
        return _truthy(self.evaluate(expr))


def _truthy(value: Any) -> bool:
    return value not in (None, False, "", 0, 0.0)


def _loose(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    return value


def _as_string(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_kv(path: Path) -> dict[str, str]:
    """``key=value`` lines of GITHUB_OUTPUT / GITHUB_ENV (the heredoc form is not used by selfheal's workflows)."""
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                out[key] = value
    return out


def run_job(
    workflow: dict[str, Any],
    job: str,
    workspace: Path,
    *,
    github: dict[str, Any],
    secrets: dict[str, str],
    inputs: dict[str, str] | None = None,
    base_env: dict[str, str],
    runner_temp: Path,
    until: str | None = None,
    timeout_s: float = 120,
) -> JobResult:
    """Run ``job``'s steps in order (``until``: stop after the step of that name)."""
    spec = workflow["jobs"][job]
    runner_temp.mkdir(parents=True, exist_ok=True)
    summary = runner_temp / "step_summary.md"
    summary.write_text("")
    steps_ctx: dict[str, dict[str, Any]] = {}
    context: dict[str, Any] = {"github": github, "secrets": secrets, "inputs": inputs or {}, "steps": steps_ctx,
                               "runner": {"os": "Linux", "temp": str(runner_temp)}, "env": {}}
    ex = Expressions(context, workspace)
    env: dict[str, str] = {}
    for key, value in (workflow.get("env") or {}).items():
        env[key] = ex.interpolate(value)
    context["env"] = env
    for key, value in (spec.get("env") or {}).items():
        env[key] = ex.interpolate(value)
    runner_env = {
        **base_env,
        "CI": "true", "GITHUB_ACTIONS": "true", "RUNNER_OS": "Linux", "RUNNER_TEMP": str(runner_temp),
        "GITHUB_WORKSPACE": str(workspace), "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_REPOSITORY": str(github.get("repository", "")), "GITHUB_RUN_ID": str(github.get("run_id", "1")),
        "GITHUB_BASE_REF": str(github.get("base_ref", "")), "GITHUB_EVENT_NAME": str(github.get("event_name", "")),
    }
    results: list[StepResult] = []
    for n, step in enumerate(spec["steps"]):
        name = step_name(step)
        if not ex.condition(step.get("if")):
            results.append(StepResult(name, ran=False, uses=step.get("uses")))
            steps_ctx[step.get("id") or f"_{n}"] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
        elif "uses" in step:
            results.append(StepResult(name, ran=False, uses=str(step["uses"])))
            steps_ctx[step.get("id") or f"_{n}"] = {"outputs": {}, "outcome": "success", "conclusion": "success"}
        else:
            step_env = {k: ex.interpolate(v) for k, v in (step.get("env") or {}).items()}
            output = runner_temp / f"output-{n}"
            env_file = runner_temp / f"env-{n}"
            output.write_text("")
            env_file.write_text("")
            script = runner_temp / f"step-{n}.sh"
            script.write_text(ex.interpolate(step["run"]), encoding="utf-8")
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-e", str(script)], cwd=workspace, capture_output=True, text=True,
                env={**runner_env, **env, **step_env, "GITHUB_OUTPUT": str(output), "GITHUB_ENV": str(env_file)},
                timeout=timeout_s,
            )
            outputs = _read_kv(output)
            env.update(_read_kv(env_file))
            ok = done.returncode == 0
            outcome = "success" if ok else "failure"
            steps_ctx[step.get("id") or f"_{n}"] = {
                "outputs": outputs, "outcome": outcome,
                "conclusion": "success" if ok or step.get("continue-on-error") else "failure",
            }
            results.append(StepResult(name, ran=True, exit_code=done.returncode, outputs=outputs,
                                      stdout=done.stdout, stderr=done.stderr))
            if not ok and not step.get("continue-on-error"):
                ex.job_failed = True
        if until is not None and name == until:
            break
    return JobResult(results, ex.job_failed, summary.read_text(encoding="utf-8"))


def path_with(shims: Path) -> str:
    """PATH with ``shims`` first, then the interpreter running the tests, then the system's."""
    import sys

    return os.pathsep.join([str(shims), str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
