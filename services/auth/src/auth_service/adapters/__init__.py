"""Adapters: database tables, clients of other services, event publishing."""
