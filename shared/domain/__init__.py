"""The pure domain: member state, tiers, rules and contact policy.

Nothing here performs I/O or imports Kafka, SQL, HTTP or pydantic; adapters call in
with plain values and take plain values back, so every decision is testable alone
and replays of history give the same results.
"""
