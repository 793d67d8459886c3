"""A demo stream for `make run`."""
