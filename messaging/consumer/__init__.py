"""One consumer runtime for every service: `runtime` (the consumer thread, fetch, rewind, backpressure, ordered
asynchronous commits, rebalances), `decode` (the decode and dead-letter step), `offsets` (which offsets
finished work allows to commit) and `dispatch` (who does the work: records by key, concurrently, or in
batches)."""
