"""Pools with exactly one bug each; EXPECTED_INVARIANT names the invariant it breaks."""
