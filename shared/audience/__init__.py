"""The read side: segment definitions compiled to SQL, saved segments as stored, the incentives report's figures.

Definitions (``shared.domain.segments``) are evaluated inside PostgreSQL, never by
loading members into Python: ``segment_query`` compiles a definition to one SQLAlchemy Core
expression with bound parameters and runs the counts, samples, pages and exports of it.
``incentive_report`` counts the incentives report's figures per rule the same way, in
one statement. Nothing here writes; saving segments goes through ``shared.usecases.segments``.
"""
