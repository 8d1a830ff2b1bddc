"""What one line of the chat log says, as plain data (built from client events or the local
history cache), and how it is drawn. Kept apart from the widgets so the log can be tested and
rendered without a running app."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rich.text import Text

from tui.client.events import MessageShown, MessageUndecryptable
from tui.client.files import is_file, safe_name

#: Sender colours: readable on both the light and the dark theme.
PALETTE = (
    "#e06c75",
    "#61afef",
    "#98c379",
    "#c678dd",
    "#d19a66",
    "#56b6c2",
    "#e5c07b",
    "#be5046",
)

#: Delivery marks of own messages: sending → accepted (durable) → delivered (in history).
MARKS = {
    "sending": ("…", "sending"),
    "queued": ("⧗", "queued until the server is back"),
    "outbox": ("⧗", "in the outbox until the server is back"),
    "held": ("⏸", "held: a key changed"),
    "accepted": ("✓", "accepted"),
    "delivered": ("✓✓", "delivered"),
    "failed": ("✗", "not sent"),
}


def colour_of(user: str) -> str:
    """A stable colour per user id (the same on every screen and every run)."""
    digest = hashlib.sha256(user.encode()).digest()
    return PALETTE[digest[0] % len(PALETTE)]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@dataclass
class Entry:
    """One message of the log: delivered (``seq``), or own and still on its way."""

    sender: str
    ts: datetime
    text: str = ""
    seq: int | None = None
    msg_id: str = ""
    kind: str = "message"
    """``message``, ``file``, ``undecryptable``, ``expired``."""
    state: str = "delivered"
    """Own messages: a key of ``MARKS``."""
    problem: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    mine: bool = False
    verified: bool = True

    @property
    def day(self) -> str:
        return self.ts.astimezone().strftime("%a %d %b %Y")

    def delivered(self, shown: Entry) -> Entry:
        """This own pending entry, now that the server's copy arrived."""
        return replace(shown, mine=True, state="delivered")


def entry_of(event: MessageShown | MessageUndecryptable, me: str) -> Entry:
    if isinstance(event, MessageUndecryptable):
        return Entry(
            sender=event.sender,
            ts=event.ts,
            seq=event.seq,
            msg_id=event.msg_id,
            kind="undecryptable",
            problem=event.reason,
            mine=event.sender == me,
        )
    return _entry(
        event.sender, event.ts, event.seq, event.msg_id, event.content, me, event.verified
    )


def entry_from_history(seq: int, row: dict[str, Any], me: str) -> Entry:
    """An entry of the local (decrypted) history cache (``LocalStore.history``)."""
    ts = datetime.fromisoformat(str(row.get("ts")))
    content = row.get("content") or {}
    return _entry(str(row.get("sender", "?")), ts, seq, str(row.get("msg_id", "")), content, me)


def _entry(
    sender: str,
    ts: datetime,
    seq: int,
    msg_id: str,
    content: dict[str, Any],
    me: str,
    verified: bool = True,
) -> Entry:
    body = content.get("body")
    text = body if isinstance(body, str) else ""
    kind = "message"
    if content.get("expired"):
        kind = "expired"
    elif is_file(content):
        kind = "file"
    return Entry(
        sender=sender,
        ts=ts,
        text=text,
        seq=seq,
        msg_id=msg_id,
        kind=kind,
        content=dict(content),
        mine=sender == me,
        verified=verified,
    )


def render_entry(entry: Entry) -> Text:
    """``HH:MM sender  text`` with the sender's colour; own messages carry a delivery mark."""
    out = Text(no_wrap=False, overflow="fold")
    out.append(entry.ts.astimezone().strftime("%H:%M "), style="dim")
    name_style = f"bold {colour_of(entry.sender)}"
    out.append(entry.sender, style=name_style + (" underline" if entry.mine else ""))
    if entry.mine:
        out.append(" (you)", style="dim")
    out.append("  ")
    if entry.kind == "undecryptable":
        out.append(f"🔒 {entry.problem}", style="italic dim")
    elif entry.kind == "expired":
        out.append("(this message disappeared)", style="italic dim")
    elif entry.kind == "file":
        size = entry.content.get("size")
        label = safe_name(entry.content)
        if isinstance(size, int):
            label += f" ({human_size(size)})"
        out.append(f"📎 {label}", style="bold")
        out.append("  click or Enter to save", style="dim")
    else:
        # Continuation lines start under the first line's text, not under the time.
        out.append(entry.text.replace("\n", "\n" + " " * 6))
    if entry.mine:
        mark, _why = MARKS.get(entry.state, ("", ""))
        style = "red" if entry.state == "failed" else "dim"
        out.append(f"  {mark}", style=style)
        if entry.state in ("failed", "held") and entry.problem:
            out.append(f" {entry.problem}", style=style)
    return out


def notice_text(text: str, ts: datetime | None = None) -> Text:
    out = Text(overflow="fold")
    if ts is not None:
        out.append(ts.astimezone().strftime("%H:%M "), style="dim")
    out.append(f"— {text}", style="italic dim")
    return out
