"""The operator command line, ``engagement-ops``: scheduler runs, exports, reports, replays, the quarantine.

A thin adapter over the use cases and the read side the services use: it parses, calls,
and prints (tables, or the API's JSON with ``--json``). It changes state only through the
use cases, and reads with the API's own queries, so its numbers are the API's.
"""
