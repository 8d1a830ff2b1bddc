"""The servers sealchat is measured against: a bare aiohttp broadcast (the physical limit of
this stack on this machine) and python-socketio (what a socket.io user would pick)."""
