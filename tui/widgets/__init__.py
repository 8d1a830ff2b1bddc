"""Textual widgets of the sealchat client."""
