"""The edge: everything that speaks HTTP/ASGI below the doors (ids, limits, auth, errors)."""
