"""Database plumbing shared by both services: engines for SQLite (default) and PostgreSQL."""
