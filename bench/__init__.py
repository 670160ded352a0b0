"""`make bench`: the gateway against its ceilings on loopback, pinned, A B A B (issue 5).

Not shipped and never imported by `app/`.
"""
