"""Textual screens of the sealchat client."""
