"""Shared fixtures. Tests marked ``nnabla`` skip without nnabla, or fail when
HWNAS_REQUIRE_NNABLA=1 (scripts/test sets it for .venv, so they cannot silently skip there)."""

import importlib.util
import os
import shutil
import subprocess

import pytest

from hwnas.profile import TimingProtocol

HAVE_NNABLA = importlib.util.find_spec("nnabla") is not None
REQUIRE_NNABLA = os.environ.get("HWNAS_REQUIRE_NNABLA") == "1"

#: few, short runs: tests check behaviour, never timings
FAST = TimingProtocol(warmup=1, runs=3, min_runs=2, max_seconds=0.05)


def have_gpu() -> bool:
    """A CUDA GPU is visible (what the runtimes then need is checked by each test)."""
    if not shutil.which("nvidia-smi"):
        return False
    run = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return run.returncode == 0 and "GPU" in run.stdout


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("nnabla"):
            item.user_properties.append(("needs", "nnabla"))
        if item.get_closest_marker("gpu"):
            item.user_properties.append(("gpu", "yes"))
        if item.get_closest_marker("postgres"):
            item.user_properties.append(("needs_postgres", "yes"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("nnabla") and not HAVE_NNABLA:
        if REQUIRE_NNABLA:
            pytest.fail("nnabla is required here (HWNAS_REQUIRE_NNABLA=1) but not installed")
        pytest.skip("needs nnabla (Python <= 3.10): run scripts/setup and test in .venv")
    if item.get_closest_marker("postgres") and not os.environ.get("HWNAS_TEST_POSTGRES_URL"):
        if os.environ.get("HWNAS_REQUIRE_POSTGRES") == "1":
            pytest.fail("HWNAS_TEST_POSTGRES_URL is not set: scripts/test starts the server")
        pytest.skip("needs PostgreSQL: run scripts/test, or set HWNAS_TEST_POSTGRES_URL")
    if item.get_closest_marker("gpu") and not have_gpu():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def nnabla_backend():
    from hwnas.profile import get_backend
    return get_backend("nnabla")


@pytest.fixture(scope="session")
def mobilenet_table(nnabla_backend, tmp_path_factory):
    """The mobilenet space's layer table, really measured with nnabla on this CPU."""
    from hwnas.profile import profile_layers
    from hwnas.spaces import get_space
    path = tmp_path_factory.mktemp("tables") / "layers.csv"
    return profile_layers(nnabla_backend, get_space("mobilenet").unique_layers(), path, FAST,
                          show_progress=False)
