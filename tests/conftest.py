"""Hypothesis profiles: ``dev`` (default), ``ci`` (derandomized), ``thorough``.

tox does not pass ``CI`` through, and Hypothesis would then load its own ``ci`` profile
whenever it detects CI: ours is registered under that name so it is the one used.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=40, deadline=None)
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
