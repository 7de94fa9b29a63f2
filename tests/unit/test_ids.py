"""Public ids: upstream's Hash (letters and digits), a letter first, never repeated."""

from __future__ import annotations

import re
from collections import Counter

from datamonkey_chat.domain.ids import LENGTH, new_id

HASH = re.compile(r"^[a-zA-Z0-9]+$")  # upstream's Hash pattern


def test_ids_are_letter_first_alphanumeric_and_distinct() -> None:
    ids = [new_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert len(value) == LENGTH and HASH.match(value) and value[0].isalpha()
        assert value.isascii()


def test_every_character_is_used_in_every_position() -> None:
    """A sign the bits are spread: each position takes (nearly) every allowed character."""
    ids = [new_id() for _ in range(20000)]
    assert len(Counter(value[0] for value in ids)) == 52
    for position in range(1, LENGTH):
        assert len(Counter(value[position] for value in ids)) == 62, position
