"""Test-wide settings.

- NumPy floating-point warnings (overflow, divide by zero, invalid) are errors:
  a kernel that produces inf or NaN silently is a bug. Underflow is ignored
  (exp of a very negative number rounding to 0 is the intended result).
- Hypothesis: a bounded profile by default so the suite stays fast on 2 cores;
  ``HYPOTHESIS_PROFILE=thorough pytest`` runs many more examples.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=12, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def numpy_errors_are_failures():
    old = np.seterr(all="raise", under="ignore")
    yield
    np.seterr(**old)


@pytest.fixture(scope="session")
def color_model(tmp_path_factory):
    """A tiny run folder that names the shapes world's colors (tests/apps_fixtures.py); trained once."""
    from apps_fixtures import train_color_model

    return train_color_model(tmp_path_factory.mktemp("apps") / "color-model")
