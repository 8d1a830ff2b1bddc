"""Blob port: encrypted attachments, stored whole or not at all."""
