"""Read-only HTTP API over member status, actions and notification outcomes."""
