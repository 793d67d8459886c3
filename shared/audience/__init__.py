"""The read side of audiences: segment definitions compiled to SQL, and the saved segments as stored.

Definitions (``shared.domain.segments``) are evaluated inside PostgreSQL, never by
loading members into Python: ``segment_query`` compiles a definition to one SQLAlchemy Core
expression with bound parameters and runs the counts, samples, pages and exports of it.
Nothing here writes; saving segments goes through ``shared.usecases.segments``.
"""
