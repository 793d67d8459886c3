"""Code shared by the engagement, notifier and API services."""
