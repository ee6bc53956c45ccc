"""Date options of the read side (`--since`, `--until`): checked before anything is read or printed."""

from __future__ import annotations

from datetime import date, datetime


def checked_date(option: str, text: str | None) -> str | None:
    """`text` as the ISO 8601 date or time it must be, or a ValueError naming `option`."""
    if text is None:
        return None
    cleaned = text.strip()
    try:
        if len(cleaned) == 10:
            return date.fromisoformat(cleaned).isoformat()
        return datetime.fromisoformat(cleaned.replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise ValueError(
            f"{option} {text!r}: not a date (use YYYY-MM-DD or an ISO 8601 time such as 2024-05-01T12:00:00Z)"
        ) from None
