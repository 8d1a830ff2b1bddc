"""sealchatd: the sealchat server (auth, chat, log, archiver)."""

__version__ = "0.1.0"
