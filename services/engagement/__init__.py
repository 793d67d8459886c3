"""The engagement service: input events in, member state and actions out."""
