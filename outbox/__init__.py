"""The transactional outbox, a component of its own: the table events are written to in the transaction that
changes the state (`table`), the relay that publishes them (`relay`), the leased claims it takes on rows
(`claims`), the process identity those claims carry (`ownership`) and the one Alembic branch that creates the
table for every service that has one (`migrations/`, labelled `outbox`; a service's
migrations/alembic.ini lists it beside its own versions, and its revisions name it in `depends_on`).

Rows cross the package's boundary as small frozen dataclasses: `table.OutboxEntry` to write, `claims.ClaimedRow`
read back by the relay, `parking.ParkedRow` for repair. Their times (created_at, parked_at, first_failed_at,
claimed_until) are epoch seconds as floats, the table's storage unit: they stay within the outbox and the
operator's tools and never reach a service's domain, which hands over events and keys only."""
