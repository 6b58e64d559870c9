"""Shared fixtures: the repository root, the CLI binary, and the servers `.ci/run` starts.

Under ``CI=true`` a test whose server (RabbitMQ, Redis) or binary is missing FAILS; it
never skips. Elsewhere such tests skip with the reason.
"""

import os
import pathlib
import socket
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip, or under CI=true fail, when something a test needs is not there."""
    if condition:
        return
    if under_ci():
        pytest.fail(f"{reason} (CI=true: a missing server or tool fails the test)")
    pytest.skip(reason)


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return ROOT


@pytest.fixture(scope="session")
def cli() -> str:
    """The `rpcseal` binary: $RPCSEAL_CLI, or target/{debug,release}/rpcseal."""
    candidates = [os.environ.get("RPCSEAL_CLI", "")]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    candidates += [str(target / "debug" / "rpcseal"), str(target / "release" / "rpcseal")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    require(False, "the rpcseal CLI is not built (cargo build, or set RPCSEAL_CLI)")
    raise AssertionError("unreachable")


def run_cli(cli: str, *args: str, input: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([cli, *args], input=input, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rabbit_port() -> int:
    """The loopback port of the RabbitMQ that .ci/run starts ($RPCSEAL_TEST_AMQP_PORT)."""
    port = int(os.environ.get("RPCSEAL_TEST_AMQP_PORT", "0") or 0)
    require(port != 0, "RPCSEAL_TEST_AMQP_PORT is not set (no RabbitMQ started)")
    require(reachable("127.0.0.1", port),
            f"RabbitMQ is unreachable at 127.0.0.1:{port}")
    return port


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("RPCSEAL_TEST_REDIS_URL", "")
    require(bool(url), "RPCSEAL_TEST_REDIS_URL is not set (no Redis started)")
    return url
