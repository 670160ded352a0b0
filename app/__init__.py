"""Proxy-session gateway: REST and GraphQL doors onto one cached Chime SDK Voice client."""

from __future__ import annotations

__version__ = "0.1.0"
