"""The headless ``sealchat`` sub-commands (``tui/cli.py`` parses, these run)."""
