"""The wire contract between ``sealchat`` and ``sealchatd``: pure data, no I/O, no framework."""
