"""Notifications out: grouping, the durable outbox, the dispatcher, claims, channels."""
