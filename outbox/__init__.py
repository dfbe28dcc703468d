"""The transactional outbox, a component of its own: the table events are written to in the transaction that
changes the state (`table`), the relay that publishes them (`relay`), the leased claims it takes on rows
(`claims`), the process identity those claims carry (`ownership`) and the one Alembic branch that creates the
table for every service that has one (`migrations/`, labelled `outbox`; a service's
migrations/alembic.ini lists it beside its own versions, and its revisions name it in `depends_on`)."""
