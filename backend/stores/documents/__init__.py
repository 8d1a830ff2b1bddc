"""Document store port (messages, to-device queue, event log); adapters live beside it."""

from backend.stores.documents.port import (
    EXPIRED,
    DocumentStore,
    EventQuery,
    EventRecord,
    StoredMessage,
    ToDevice,
)

__all__ = ["EXPIRED", "DocumentStore", "EventQuery", "EventRecord", "StoredMessage", "ToDevice"]
