import time


def now_ms() -> int:
    """Unix time in milliseconds, the unit of every timestamp on the wire."""
    return time.time_ns() // 1_000_000
