"""The log's read side: filters in, records out, newest first. No aiohttp here."""

from __future__ import annotations

from backend.log.records import iso_z
from backend.log.schemas import EventFilter, EventOut, EventsOut
from backend.stores.documents.port import DocumentStore, EventQuery


class LogQueries:
    def __init__(self, documents: DocumentStore) -> None:
        self._documents = documents

    async def events(self, query: EventFilter) -> EventsOut:
        records = await self._documents.query_events(
            EventQuery(
                server=query.server,
                category=query.category,
                id=query.id,
                since=query.since,
                until=query.until,
                limit=query.limit,
            )
        )
        return EventsOut(
            events=[
                EventOut(
                    event_id=r.event_id,
                    datetime=iso_z(r.datetime),
                    server=r.server,
                    category=r.category,
                    id=r.id,
                    data=dict(r.data),
                    request_id=r.request_id,
                )
                for r in records
            ]
        )
