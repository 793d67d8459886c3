"""The deployable services: engagement, notifier and api."""
