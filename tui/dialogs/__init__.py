"""Textual dialogs of the sealchat client."""
