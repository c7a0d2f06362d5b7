"""boto3 clients for the tools: a real account, or a simulated one seeded from a scenario.

The tools only ever see an :class:`AwsClients`; whether it talks to AWS or to
moto is decided here. A :class:`SimulatedAccount` is a moto account of its own
(unique account id, explicit fake credentials, no environment changes), so
several scenarios can be open at once — e.g. a concurrent evaluation — without
seeing each other's functions.

Time: the tools read "now" from ``AwsClients.clock``. A real account uses the
wall clock; a simulated account is frozen at one instant (see ``clock.py``) and
its clients hide the two things moto takes from the wall clock or from process
state — ``LastModified`` stamps of in-session changes and the (per-process)
account id in error messages — so the same calls give the same outputs on any day.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ProfileNotFound

from lambda_ops.clock import SIMULATED_NOW, Clock, frozen_clock, lambda_time, wall_clock
from lambda_ops.simapi import SimulatedApis, install_simulated_apis
from selfheal.errors import ConfigError, ScenarioError

if TYPE_CHECKING:
    from selfheal import Settings
    from lambda_ops.scenario import Scenario


@dataclass(frozen=True)
class AwsClients:
    """The three services the lambda_ops tools use, in one region."""

    lambda_: Any
    cloudwatch: Any
    logs: Any
    region: str
    clock: Clock = wall_clock


# Bounded: a hung endpoint must cost seconds, not the whole run.
REAL_CONFIG = Config(
    connect_timeout=5,
    read_timeout=30,
    retries={"max_attempts": 3, "mode": "standard"},
    user_agent_extra="selfheal",
)


def real_clients(settings: Settings) -> AwsClients:
    """Clients for the real account of the configured profile/region (boto3's credential chain)."""
    try:
        session = boto3.Session(profile_name=settings.aws.profile or None, region_name=settings.aws.region)
        make = lambda name: session.client(name, config=REAL_CONFIG)  # noqa: E731
        return AwsClients(make("lambda"), make("cloudwatch"), make("logs"), settings.aws.region, wall_clock)
    except ProfileNotFound:
        raise ConfigError(f"aws.profile: AWS profile '{settings.aws.profile}' not found") from None
    except BotoCoreError as exc:
        raise ConfigError(f"aws: cannot create AWS clients: {exc}") from None


# -- the simulated account ----------------------------------------------------

FAKE_ACCESS_KEY = "AKIASELFHEALSIMULATED"
FAKE_SECRET_KEY = "selfheal-simulated-secret"
# What error messages show instead of the account's real (per-process) moto id.
DISPLAY_ACCOUNT_ID = "123456789012"
SIM_CONFIG = Config(retries={"max_attempts": 1, "mode": "standard"})

_mock_lock = threading.Lock()
_mock: Any = None
_mock_users = 0
_session_lock = threading.Lock()
_session: boto3.Session | None = None
_account_ids = itertools.count(1)


def _acquire_mock() -> None:
    """Start moto once for all open simulated accounts (moto's patching is process-wide)."""
    global _mock, _mock_users
    with _mock_lock:
        if _mock_users == 0:
            from moto import mock_aws

            # mock_credentials=False: moto must not write fake keys into os.environ;
            # our clients carry explicit credentials instead.
            _mock = mock_aws(config={"core": {"mock_credentials": False}})
            _mock.start()
        _mock_users += 1


def _release_mock() -> None:
    global _mock, _mock_users
    with _mock_lock:
        _mock_users -= 1
        if _mock_users == 0 and _mock is not None:
            _mock.stop()
            _mock = None


def _sim_session() -> boto3.Session:
    """One shared session (service models load once), blind to the user's AWS config files."""
    global _session
    if _session is None:
        # No AWS_PROFILE lookup, no config/credentials files, no endpoint overrides:
        # the simulation must not depend on (or touch) the user's AWS setup.
        core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        core.set_config_variable("config_file", "/dev/null")
        core.set_config_variable("credentials_file", "/dev/null")
        core.set_config_variable("ignore_configured_endpoint_urls", True)
        _session = boto3.Session(botocore_session=core)
    return _session


def _next_account_id() -> str:
    return f"{400000000000 + next(_account_ids):012d}"


class SimulatedAccount:
    """A moto AWS account seeded from a scenario (or empty), as a context manager.

    ``clients`` are ready after ``open()``/``__enter__``; ``seed_seconds`` says how
    long seeding took; ``now`` is the frozen instant of the account's clock: every
    relative time was anchored to it and the tools' windows end at it. It is
    :data:`SIMULATED_NOW` unless given, never the wall clock.
    """

    def __init__(self, scenario: Scenario | None, region: str = "us-east-1", *, now: datetime | None = None) -> None:
        self.scenario = scenario
        self.region = region
        self.clock: Clock = frozen_clock(now or SIMULATED_NOW)
        self.now = self.clock()
        self.account_id = _next_account_id()
        limit = scenario.account.concurrency_limit if scenario is not None else 1000
        self.apis = SimulatedApis(self.account_id, region, limit, clock=self.clock)
        # LastModified stamps written by seeding; any other stamp is moto's wall clock.
        self.seeded_stamps: set[str] = set()
        self.seed_seconds = 0.0
        self._clients: AwsClients | None = None
        self._open = False
        self._extra: dict[str, Any] = {}
        self._leases: list[_Leased] = []

    # -- lifecycle --------------------------------------------------------
    def open(self) -> SimulatedAccount:
        if self._open:
            return self
        _acquire_mock()
        self._open = True
        try:
            t0 = time.perf_counter()
            self._clients = AwsClients(
                self.client("lambda"), self.client("cloudwatch"), self.client("logs"), self.region, self.clock
            )
            if self.scenario is not None:
                from lambda_ops.seed import seed_account

                seed_account(self.scenario, self, self.now)
            self.seed_seconds = time.perf_counter() - t0
        except ScenarioError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            name = self.scenario.name if self.scenario is not None else "<empty>"
            raise ScenarioError(f"scenario '{name}': seeding the simulated account failed: {exc}") from exc
        return self

    def close(self) -> None:
        """Drop this account's data and stop moto when no other account is open."""
        if not self._open:
            return
        self._open = False
        self._forget_account()
        leases, self._leases = self._leases, []
        self._extra.clear()
        self._clients = None
        for leased in leases:
            _POOL.release(leased)
        _release_mock()

    def __enter__(self) -> SimulatedAccount:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def clients(self) -> AwsClients:
        if self._clients is None or not self._open:
            raise RuntimeError("simulated account is not open")
        return self._clients

    # -- plumbing ---------------------------------------------------------
    def client(self, service: str) -> Any:
        """A client bound to this account (cached), with the simulated APIs installed.

        Clients come from a process-wide pool and go back to it on ``close()``:
        building a botocore client costs ~10 ms of GIL-holding Python, three per
        account, which dominated a concurrent evaluation's per-example work. A
        pooled client's handlers follow its lease, so it only ever talks to the
        account that holds it; once returned it refuses calls until leased again.
        """
        if service in self._extra:
            return self._extra[service]
        leased = _POOL.lease(service, self.region, self)
        self._leases.append(leased)
        self._extra[service] = leased.client
        if service == "lambda":
            self.apis.bind_lambda(leased.client)
        return leased.client

    def _normalise_response(self, parsed: dict[str, Any] | None = None, model: Any = None, **_: Any) -> None:
        """Make responses independent of the wall clock and of how many accounts this process opened.

        On a frozen clock a change made during the session happens at ``now``:
        a configuration update stamps the function's ``LastModified`` with it (as
        Lambda does; moto keeps the old stamp), and any stamp seeding did not
        write — moto's wall clock — reads as ``now``. The account id differs per
        process (accounts are numbered as opened), so error messages show
        :data:`DISPLAY_ACCOUNT_ID` instead.
        """
        if not isinstance(parsed, dict):
            return
        err = parsed.get("Error")
        if isinstance(err, dict) and isinstance(err.get("Message"), str):
            err["Message"] = err["Message"].replace(self.account_id, DISPLAY_ACCOUNT_ID)
        elif getattr(model, "name", None) in _CHANGES_LATEST and isinstance(parsed.get("FunctionName"), str):
            self._stamp_latest(parsed["FunctionName"])
        _restamp(parsed, self.seeded_stamps, lambda_time(self.now))

    def _stamp_latest(self, function_name: str) -> None:
        """Record a change of $LATEST at the frozen ``now`` (no AWS API can; moto's storage)."""
        try:
            from moto.awslambda.models import lambda_backends

            entry = lambda_backends[self.account_id][self.region]._lambdas._functions[function_name]
            entry["latest"].last_modified = lambda_time(self.now)
        except (ImportError, AttributeError, KeyError):  # pragma: no cover - moto internals moved
            pass

    def _forget_account(self) -> None:
        try:
            from moto.core.base_backend import BackendDict

            for backend in list(BackendDict._instances):
                backend.pop(self.account_id, None)
        except (ImportError, AttributeError):  # pragma: no cover - moto internals moved
            pass


class _Leased:
    """A pooled client and the account currently holding it (None: back in the pool)."""

    __slots__ = ("client", "key", "account")

    def __init__(self, client: Any, key: tuple[str, str]) -> None:
        self.client = client
        self.key = key
        self.account: SimulatedAccount | None = None

    def holder(self) -> SimulatedAccount:
        account = self.account
        if account is None:
            raise RuntimeError("simulated account is closed: its AWS clients cannot be used any more")
        return account


class _ClientPool:
    """Simulated-account clients, reused across accounts (one lease at a time per client).

    Every simulated client has the same fake credentials, config and region;
    what ties one to an account is only its event handlers, and those read the
    account from the lease. So a client can serve account after account, and
    the pool holds as many per service as accounts were ever open at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[tuple[str, str], list[_Leased]] = {}

    def lease(self, service: str, region: str, account: SimulatedAccount) -> _Leased:
        key = (service, region)
        with self._lock:
            free = self._free.get(key)
            leased = free.pop() if free else None
        if leased is None:
            leased = self._create(service, region)
        leased.account = account
        return leased

    def release(self, leased: _Leased) -> None:
        leased.account = None
        with self._lock:
            self._free.setdefault(leased.key, []).append(leased)

    @staticmethod
    def _create(service: str, region: str) -> _Leased:
        with _session_lock:
            c = _sim_session().client(
                service,
                region_name=region,
                aws_access_key_id=FAKE_ACCESS_KEY,
                aws_secret_access_key=FAKE_SECRET_KEY,
                config=SIM_CONFIG,
            )
        leased = _Leased(c, (service, region))

        def route_to_account(request: Any, **_: Any) -> None:
            # moto picks the account from this header: each simulated account is isolated.
            request.headers["x-moto-account-id"] = leased.holder().account_id

        def normalise(**kwargs: Any) -> None:
            leased.holder()._normalise_response(**kwargs)

        c.meta.events.register("before-sign", route_to_account)
        c.meta.events.register("after-call", normalise)
        install_simulated_apis(c, lambda: leased.holder().apis)
        return leased


_POOL = _ClientPool()


# Operations that change $LATEST's configuration or code (and so its LastModified).
_CHANGES_LATEST = frozenset({"UpdateFunctionConfiguration", "UpdateFunctionCode"})


def _restamp(node: Any, seeded: set[str], now_stamp: str) -> None:
    """Replace every ``LastModified`` string that seeding did not write with ``now_stamp`` (in place)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "LastModified" and isinstance(value, str):
                if value not in seeded:
                    node[key] = now_stamp
            else:
                _restamp(value, seeded, now_stamp)
    elif isinstance(node, list):
        for item in node:
            _restamp(item, seeded, now_stamp)
