"""The read side: segment definitions compiled to SQL, saved segments as stored, the reports' figures.

Definitions (``shared.domain.segments``) are evaluated inside PostgreSQL, never by
loading members into Python: ``segment_query`` compiles a definition to one SQLAlchemy Core
expression with bound parameters and runs the counts, samples, pages and exports of it;
``segment_export`` gives an export's columns their text. ``incentive_report`` counts the
incentives report's figures per rule the same way, in one statement, and
``campaign_report`` a campaign's. ``quarantine_reads`` lists quarantined members and
``dead_letter_reads`` gives back dead letters stored whole, for operators. Nothing here
writes; saving segments goes through ``shared.usecases.segments``.
"""
