"""Tests of the Textual client, driven as a person would against a real server."""
