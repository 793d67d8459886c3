"""The member-operations console: HTML pages served under ``/console`` that call the API's routes.

The pages carry no member data: each page's script asks the JSON API for it with the
bearer token the operator signed in with, so the console sees and changes exactly what
that token may (``API_TOKENS`` or ``API_READ_TOKENS``).
"""
