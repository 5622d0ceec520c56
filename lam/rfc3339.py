"""RFC 3339 timestamps: parse any offset, keep UTC with microseconds, print with "Z".

pydantic's own datetime parsing also takes unix numbers and loose ISO forms; the wire
format is RFC 3339 only, so parsing is done here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["format_rfc3339", "parse_rfc3339", "to_utc"]

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def to_utc(value: datetime) -> datetime:
    """An aware datetime converted to UTC; naive ones are refused (their zone is a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "timestamp has no UTC offset; use an aware datetime (e.g. datetime.now(UTC))"
        )
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is out of range once converted to UTC") from None
    # Plain datetime (not a subclass) so equality and printing are predictable.
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC
    )


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 date-time; digits past microseconds are dropped."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not an RFC 3339 date-time (e.g. 2025-01-31T09:00:00Z)")
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        if zulu:
            tz = UTC
        else:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if int(off_m) > 59:
                raise ValueError("offset minutes must be below 60")
            tz = timezone(-offset if sign == "-" else offset)
        parsed = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
        )
    except ValueError as exc:
        raise ValueError(f"{text[:40]!r} is not a valid date-time: {exc}") from None
    return to_utc(parsed)


def format_rfc3339(value: datetime) -> str:
    """``2025-01-31T09:00:00.123456Z``: UTC, six fraction digits (so round trips are exact)."""
    return to_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
