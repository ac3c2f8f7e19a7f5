"""security.fresh_key: idempotency keys cut from one urandom block, never shared across a fork."""

from __future__ import annotations

import os
import re

from flask_hx_actions import security


def test_keys_look_like_token_urlsafe_16_and_do_not_repeat() -> None:
    keys = [security.fresh_key() for _ in range(5000)]  # many blocks
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", key) for key in keys)
    assert len(set(keys)) == len(keys)


def test_a_forked_child_does_not_reuse_the_parents_keys() -> None:
    security.fresh_key()  # the parent now holds unused keys of its block
    held = list(security._keys)
    assert held
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it holds and the key it hands out
        try:
            os.write(write, f"{len(security._keys)} {security.fresh_key()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        count, key = pipe.read().split()
    os.waitpid(pid, 0)
    assert count == "0"
    assert key not in held
