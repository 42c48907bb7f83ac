"""Shared fixtures and hooks (plain helpers are in helpers.py). Tests marked ``nnabla`` skip
without nnabla, or fail when HWNAS_REQUIRE_NNABLA=1 (scripts/test sets it for .venv, so they
cannot silently skip there); tests marked ``torch`` likewise without torch, or fail when
HWNAS_REQUIRE_TORCH=1 (set for .venv-core)."""

import os

import pytest
from helpers import FAST, HAVE_NNABLA, HAVE_TORCH, have_gpu

REQUIRE_NNABLA = os.environ.get("HWNAS_REQUIRE_NNABLA") == "1"
REQUIRE_TORCH = os.environ.get("HWNAS_REQUIRE_TORCH") == "1"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("nnabla"):
            item.user_properties.append(("needs", "nnabla"))
        if item.get_closest_marker("torch"):
            item.user_properties.append(("needs", "torch"))
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
    if item.get_closest_marker("torch") and not HAVE_TORCH:
        if REQUIRE_TORCH:
            pytest.fail("torch is required here (HWNAS_REQUIRE_TORCH=1) but not installed")
        pytest.skip("needs torch: pip install 'torch==2.13.0+cpu' (scripts/test installs it "
                    "in .venv-core)")
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
    """The mobilenet space's layer table, really measured with nnabla on this CPU, once per
    test run: xdist workers write one file, the second waiting on the table's lock and then
    finding every row measured, as two profile processes do."""
    from hwnas.profile import profile_layers
    from hwnas.spaces import get_space
    base = tmp_path_factory.getbasetemp()  # a worker's is in the run's folder
    folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return profile_layers(nnabla_backend, get_space("mobilenet").unique_layers(),
                          folder / "mobilenet-layers.csv", FAST, show_progress=False)
