"""Alembic environment: runs on the connection persistence.migrations hands over."""

from alembic import context

from fulfillment_service.store import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
