"""doctor's MULTI probe as a dialogue with no I/O in it: what it sends after each reply, and
what it makes of the replies (Store.exchange runs it on one connection)."""

from __future__ import annotations

import pytest

from cachectl.errors import RedisError, RedisPermissionError
from cachectl.ops.doctor import _queued

COMMANDS = [("GET", "k"), ("UNLINK", "k"), ("EVAL", "return 1", 0)]


def test_multi_goes_alone_then_every_command_and_discard_in_one_write():
    talk = _queued(COMMANDS)
    assert next(talk) == [("MULTI",)]
    assert talk.send([b"OK"]) == [*COMMANDS, ("DISCARD",)]
    replies = [b"QUEUED", RedisPermissionError("no UNLINK"), RedisError("MOVED 1 h:1"), b"OK"]
    with pytest.raises(StopIteration) as done:
        talk.send(replies)
    # Only the ACL's refusal says no: MOVED and the like come after the ACL check.
    assert done.value.value == [True, False, True]


def test_a_refused_multi_sends_nothing_more():
    talk = _queued(COMMANDS)
    next(talk)
    with pytest.raises(StopIteration) as done:
        talk.send([RedisPermissionError("no MULTI")])
    assert done.value.value is None


def test_a_refused_discard_ends_the_dialogue_with_its_error():
    # The connection is still inside MULTI: the error makes the store drop it.
    talk = _queued(COMMANDS[:1])
    next(talk)
    talk.send([b"OK"])
    with pytest.raises(RedisPermissionError):
        talk.send([b"QUEUED", RedisPermissionError("no DISCARD")])
