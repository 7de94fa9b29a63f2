"""Public ids: conversations, datasets and jobs.

Upstream's `Hash` is `^[a-zA-Z0-9]+$`, and some clients and shells take an id that starts
with a digit for a number: so letters and digits only, a letter first. One letter and 17
base-62 digits carry about 107 random bits. Ids made before this (hex, url-safe base64)
stay valid: nothing checks an id's shape when it is looked up.
"""

from __future__ import annotations

import secrets
import string

LETTERS = string.ascii_letters
DIGITS = string.digits + string.ascii_letters  # base 62
LENGTH = 18


def new_id() -> str:
    # One draw of 128 bits spread over the 18 characters: 52 * 62**17 is under 2**107, so
    # the bias of the modulo is below 2**-21, and one draw is cheaper than 18 choices.
    value = secrets.randbits(128)
    value, first = divmod(value, len(LETTERS))
    chars = [LETTERS[first]]
    for _ in range(LENGTH - 1):
        value, digit = divmod(value, 62)
        chars.append(DIGITS[digit])
    return "".join(chars)
