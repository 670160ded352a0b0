"""`make bench`: the gateway against its ceilings on loopback, pinned, A B A B (see README.md).

Not shipped and never imported by `app/`.
"""
