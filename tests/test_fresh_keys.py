"""security.fresh_key and fresh_request_id: idempotency keys and request ids cut from one urandom
block, never shared across a fork."""

from __future__ import annotations

import os
import re

from flask_hx_actions import security


def test_keys_look_like_token_urlsafe_16_and_do_not_repeat() -> None:
    keys = [security.fresh_key() for _ in range(5000)]  # many blocks
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", key) for key in keys)
    assert len(set(keys)) == len(keys)


def test_request_ids_look_like_token_hex_8_and_do_not_repeat() -> None:
    ids = [security.fresh_request_id() for _ in range(5000)]  # many blocks
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_reuse_the_parents_keys_or_ids() -> None:
    security.fresh_key()  # the parent now holds unused keys and ids of their blocks
    security.fresh_request_id()
    held_keys, held_ids = list(security._keys), list(security._ids)
    assert held_keys and held_ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it holds and what it hands out
        try:
            report = f"{len(security._keys)} {len(security._ids)} "
            report += f"{security.fresh_key()} {security.fresh_request_id()}"
            os.write(write, report.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        keys, ids, key, rid = pipe.read().split()
    os.waitpid(pid, 0)
    assert (keys, ids) == ("0", "0")
    assert key not in held_keys
    assert rid not in held_ids
