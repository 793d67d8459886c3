"""The notifier: applies the contact policy to actions and delivers them through channels."""
