"""The runtime both Kafka workers (engagement, notifier) run on.

A worker brings what is its own (how a batch of records is handled, and what else it
runs on a timer); the runtime does the rest the same way for both:

* ``runtime``: start-up and graceful shutdown on SIGTERM/SIGINT, the outbox relay in its
  own task with its own Kafka producer, the health and readiness server;
* ``batch_loop``: poll a batch, hand it over, commit offsets only after the handler's
  database transaction, rewind the partitions when the batch failed;
* ``watchers``: the stalled-partition check behind readiness, consumer lag, the outbox
  backlog, and other periodic work;
* ``retry_policy``: the one retry policy for transient failures (tenacity);
* ``stopping``: the stop event, signals, and pauses that end early when stopping.

Handled exceptions are reported with ``shared.observability.report_failure``: a log line
without the exception's message and a ``handled_errors_total`` increment.
"""
