"""Teaching catalogue: pools with one bug each, and correct pools, for poolcheck."""
