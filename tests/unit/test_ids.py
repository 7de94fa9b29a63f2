"""Public ids: upstream's Hash (letters and digits), a letter first, a digit last, never
repeated."""

from __future__ import annotations

import re
from collections import Counter

from datamonkey_chat.domain.ids import LENGTH, new_id

HASH = re.compile(r"^[a-zA-Z0-9]+$")  # upstream's Hash pattern


def test_ids_are_letter_first_alphanumeric_and_distinct() -> None:
    ids = [new_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert len(value) == LENGTH and HASH.match(value) and value.isascii()
        assert value[0].isalpha() and value[-1].isdigit()


def test_every_character_is_used_in_every_position() -> None:
    """A sign the bits are spread: each position takes (nearly) every allowed character."""
    ids = [new_id() for _ in range(20000)]
    assert len(Counter(value[0] for value in ids)) == 52
    for position in range(1, LENGTH - 1):
        assert len(Counter(value[position] for value in ids)) == 62, position
    assert len(Counter(value[-1] for value in ids)) == 10


def test_the_offline_assistant_finds_any_job_id_in_a_message() -> None:
    """It recognises "job <id>" by the id's digit: every new id has one."""
    from datamonkey_chat.assistant.offline import _JOB_ID

    for _ in range(2000):
        job_id = new_id()
        match = _JOB_ID.search(f"what were the results of job {job_id}?")
        assert match is not None and match.group(1) == job_id
