import time


def now_ms() -> int:
    """Unix time in milliseconds, the unit of every timestamp on the wire."""
    return time.time_ns() // 1_000_000


def iso_utc(ms: int) -> str:
    """Unix milliseconds as ISO 8601 UTC with milliseconds, e.g. 2026-11-29T03:00:00.123Z
    (upstream's `date-time`; one width, so such strings sort as the times do)."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
