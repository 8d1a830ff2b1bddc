"""The WebSocket gateway at ``GET /chat/ws``: one ``Connection`` per socket, commands by
frame type, and a ``Registry`` of authenticated connections to push events to.

The wire format lives in ``backend.protocol`` (shared with the client); ``docs/protocol.md``
describes it for people.
"""
