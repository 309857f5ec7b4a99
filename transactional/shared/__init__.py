"""Shared kernel: database access, outbox, relay, inbox and the consumer base."""
