"""The scheduler's command line: one run of every time-based rule due up to a business time."""
