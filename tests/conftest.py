"""Shared pytest setup."""

import pytest

# Optuna's shipped sampler contract tests (tests/test_samplers.py) use plain asserts.
pytest.register_assert_rewrite("optuna.testing.pytest_samplers")
