"""Pools that keep every invariant of docs/CONTRACT.md, each built a different way."""
