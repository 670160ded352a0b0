"""Caching primitives: a time-aware LRU cache and single flight. Keys, values and time only."""
