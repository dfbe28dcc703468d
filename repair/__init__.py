"""The operator's repair tool `order-repair` (also `python -m repair`): dead-lettered records listed, shown and
replayed to their original topic, and a service's local dead-letter spool sent on to its dead-letter topic.

- ``repair.cli``: the commands (typer).
- ``repair.dead_letters``: a dead-letter copy and its header facts, selecting copies, replaying them.
- ``repair.spool``: the spool table read as copies, and sent on to the dead-letter topic.
- ``repair.environment``: the deployment from the environment's settings: reader, registry, producer, database.
"""
