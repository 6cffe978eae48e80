"""Pools that keep every invariant of CONTRACT.md, each built a different way."""
