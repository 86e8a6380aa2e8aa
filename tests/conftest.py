"""Shared pytest setup."""

import os

import pytest

# Optuna's shipped sampler contract tests (tests/test_samplers.py) use plain asserts.
pytest.register_assert_rewrite("optuna.testing.pytest_samplers")


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """One real local Ray instance for the whole test run, in its own temp dir."""
    ray = pytest.importorskip("ray")
    tmp = str(tmp_path_factory.mktemp("ray"))
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_AUTH_MODE")}
    os.environ["RAY_TMPDIR"] = tmp
    os.environ["RAY_AUTH_MODE"] = "disabled"  # no auth token written to ~/.ray
    # "slot": a custom resource, for a test that resources reach the trial (no GPU here)
    ray.init(num_cpus=2, resources={"slot": 2}, include_dashboard=False, _temp_dir=tmp,
             log_to_driver=False)
    try:
        yield tmp
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
