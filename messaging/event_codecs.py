"""Moved to events.codecs; this name stays for bench/, chaos/ and harness/, which import it, until they import
events.codecs themselves. Nothing in messaging/ uses it."""

from events.codecs import order_created_codec, status_changed_codec

__all__ = ["order_created_codec", "status_changed_codec"]
