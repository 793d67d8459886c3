"""The write side: a unit of work over a set of members, and the SQL behind it split by concern.

Everything that changes member state goes through ``unit_of_work.SqlUnitOfWork``: the event
processor, the scheduler run and points redemption. The modules next to it hold the
set-based statements, one concern each; nothing outside this package writes member state.
"""
