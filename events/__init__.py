"""The project's events on Kafka: the topology (`topology`: every topic, its event, key, dead-letter topic,
subject, partitions and consumer group, and the dead-letter header names, declared once), the settings that
let a deployment rename topics (`settings`) and the codecs of the events (`codecs`).

`topology` imports nothing but the standard library and plain data types, so the generator and the schema
tools read it without loading Kafka clients.
"""
