"""Public ids: conversations, datasets and jobs.

Upstream's `Hash` is `^[a-zA-Z0-9]+$`, and some clients and shells take an id that starts
with a digit for a number: so letters and digits only, a letter first. The last character
is a digit, so an id is never a word either (the offline assistant finds "job <id>" in a
message by its digit). One letter, 16 base-62 characters and one digit carry about 104
random bits. Ids made before this (hex, url-safe base64) stay valid: nothing checks an id's
shape when it is looked up.
"""

from __future__ import annotations

import secrets
import string

LETTERS = string.ascii_letters
DIGITS = string.digits
ALPHANUMERIC = string.digits + string.ascii_letters  # base 62
LENGTH = 18


def new_id() -> str:
    # One draw of 128 bits spread over the 18 characters: 52 * 62**16 * 10 is under 2**105,
    # so the modulo's bias is below 2**-23, and one draw is cheaper than 18 choices.
    value = secrets.randbits(128)
    value, first = divmod(value, len(LETTERS))
    chars = [LETTERS[first]]
    for _ in range(LENGTH - 2):
        value, index = divmod(value, len(ALPHANUMERIC))
        chars.append(ALPHANUMERIC[index])
    chars.append(DIGITS[value % len(DIGITS)])
    return "".join(chars)
