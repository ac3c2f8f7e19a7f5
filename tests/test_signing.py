"""The signing shortcuts of :mod:`flask_hx_actions.signing`: remembered verifications still expire,
never carry over to another key, salt or token, give fresh copies, and reused tokens stay within
their window."""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import pytest
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner

from flask_hx_actions import signing
from flask_hx_actions.signing import Serializer

NOW = 1_800_000_000


@pytest.fixture(autouse=True)
def fresh_memos() -> Iterator[None]:
    signing._VERIFIED.clear()
    signing._SIGNED.clear()
    yield
    signing._VERIFIED.clear()
    signing._SIGNED.clear()


def at(seconds: int) -> mock._patch[object]:
    return mock.patch.object(TimestampSigner, "get_timestamp", lambda self: seconds)


def test_a_remembered_token_still_expires() -> None:
    ours = Serializer(["k"], salt="a")
    with at(NOW):
        token = ours.dumps({"id": 7})
        assert ours.loads(token, max_age=60) == {"id": 7}
    assert (ours, token) in signing._VERIFIED
    with at(NOW + 60):
        assert ours.loads(token, max_age=60) == {"id": 7}
    with at(NOW + 61), pytest.raises(SignatureExpired, match="61 > 60"):
        ours.loads(token, max_age=60)
    with at(NOW - 1), pytest.raises(SignatureExpired, match="< 0"):
        ours.loads(token, max_age=60)


def test_a_token_verified_once_is_remembered_with_its_own_timestamp() -> None:
    theirs = URLSafeTimedSerializer(["k"], salt="a")
    with at(NOW - 100):
        token = theirs.dumps({"id": 7})
    ours = Serializer(["k"], salt="a")
    with at(NOW):
        assert ours.loads(token, max_age=150) == {"id": 7}
        assert (ours, token) in signing._VERIFIED
        with pytest.raises(SignatureExpired):
            ours.loads(token, max_age=99)  # the remembered entry keeps the signing time


def test_remembering_never_crosses_salts_keys_or_changed_tokens() -> None:
    first = Serializer(["k"], salt="action-a")
    token = first.dumps({"id": 7})
    assert first.loads(token, max_age=60) == {"id": 7}
    for other in (Serializer(["k"], salt="action-b"), Serializer(["other"], salt="action-a")):
        with pytest.raises(BadSignature):
            other.loads(token, max_age=60)
    payload, stamp, signature = token.split(".")
    forged = ".".join([payload[:-1] + ("A" if payload[-1] != "A" else "B"), stamp, signature])
    with pytest.raises(BadSignature):
        first.loads(forged, max_age=60)


def test_returned_values_are_copies() -> None:
    ours = Serializer(["k"], salt="a")
    token = ours.dumps({"id": 7})
    ours.loads(token, max_age=60)["id"] = 8
    assert ours.loads(token, max_age=60) == {"id": 7}


def test_nested_values_come_back_as_fresh_copies_and_types_are_kept() -> None:
    ours = Serializer(["k"], salt="a")
    nested = ours.dumps({"ids": [1, 2]})
    assert (ours, nested) in signing._VERIFIED
    ours.loads(nested, max_age=60)["ids"].append(3)
    assert ours.loads(nested, max_age=60) == {"ids": [1, 2]}
    one, true = ours.dumps_recent({"v": 1}), ours.dumps_recent({"v": True})
    assert one != true
    assert ours.loads(one, max_age=60) == {"v": 1}
    assert ours.loads(true, max_age=60) == {"v": True}
    assert type(ours.loads(true, max_age=60)["v"]) is bool
    assert ours.dumps_recent({"ids": [1]}) != ours.dumps_recent({"ids": [2]})


def test_recent_tokens_are_reused_within_the_window_only() -> None:
    ours = Serializer(["k"], salt="a")
    with at(NOW):
        token = ours.dumps_recent({"id": 7})
        assert ours.dumps_recent({"id": 7}) == token
        assert ours.dumps_recent({"id": 8}) != token
    with at(NOW + signing.REUSE_SECONDS - 1):
        assert ours.dumps_recent({"id": 7}) == token
    with at(NOW + signing.REUSE_SECONDS):
        renewed = ours.dumps_recent({"id": 7})
    assert renewed != token
    with at(NOW - 5):  # a clock that went back never gets a token "from the future"
        assert ours.dumps_recent({"id": 7}) not in (token, renewed)
    assert Serializer(["k"], salt="b").dumps_recent({"id": 7}) != token


def test_the_memos_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "_MEMO_MAX", 10)
    ours = Serializer(["k"], salt="a")
    tokens = [ours.dumps_recent({"id": i}) for i in range(50)]
    assert len(signing._VERIFIED) <= 10
    assert len(signing._SIGNED) <= 10
    assert all(ours.loads(t, max_age=60) == {"id": i} for i, t in enumerate(tokens))
