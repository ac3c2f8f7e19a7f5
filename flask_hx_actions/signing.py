"""itsdangerous signing for bound arguments, the CSRF check and the session cookie, made cheap
enough to run once per rendered row and several times per request.

The tokens are exactly ``URLSafeTimedSerializer``'s (URL-safe base64 payload, timestamp, HMAC,
oldest-to-newest key list; JSON, SHA1 and django-concat key derivation unless told otherwise,
as Flask's sessions do); tests compare them byte for byte. Written here rather than used as is
because a page signs one token per row, and itsdangerous builds a signer, derives its key and
keys a new HMAC for every token. What this module adds:

- one signer per serializer, each derived key computed once, and the keyed HMAC state copied per
  signature (:class:`KeyedHMAC`, :class:`ReusingSigner`);
- a memo of verified tokens (:data:`_VERIFIED`): a token this process signed or verified before
  is not verified again; its age is still checked against ``max_age`` on every use, its payload
  is decoded afresh each time (values may be mutable), and a token is only ever remembered under
  the serializer (keys, salt) that signed or verified it;
- :meth:`Serializer.dumps_recent`: the token signed for the same value in the last
  :data:`REUSE_SECONDS` seconds, instead of a new signature (a re-rendered row keeps its token;
  it then expires at most that many seconds earlier than a fresh one would).

Both memos are bounded (oldest out first); reuse is only for values made of JSON scalars.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Hashable, Mapping
from typing import Any

from itsdangerous import (
    HMACAlgorithm,
    SignatureExpired,
    Signer,
    TimestampSigner,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_encode, int_to_bytes, want_bytes

#: itsdangerous' own clock, ``int(time.time())``: :meth:`Serializer.dumps_recent` reads the time
#: without the call while it is not replaced (tests patch it to move the clock).
_PLAIN_TIMESTAMP = TimestampSigner.get_timestamp
#: A token signed for the same value this recently is handed out again (see the docstring).
REUSE_SECONDS = 30
#: Payloads up to this size (JSON bytes) are not tried with zlib: row ids never shrink.
_COMPRESS_FROM = 128
_MEMO_MAX = 8192
_SCALARS = (str, int, float, bool, type(None))

#: (serializer, token) -> (signed payload, timestamp, the value when it is made of JSON scalars)
#: of tokens known to carry a valid signature.
_VERIFIED: dict[tuple[Any, str | bytes], tuple[bytes, int, Hashable | None]] = {}
#: (serializer, frozen value) -> (token, timestamp) of recently signed tokens.
_SIGNED: dict[tuple[Any, Hashable], tuple[str, int]] = {}


class KeyedHMAC(HMACAlgorithm):
    """HMAC as itsdangerous does it (SHA1 unless told), keeping the keyed HMAC state of each
    derived key and copying it per signature instead of keying a new HMAC (two hash blocks)
    every time."""

    def __init__(self, digest_method: Any = hashlib.sha1) -> None:
        super().__init__(digest_method)
        self._keyed: dict[bytes, Any] = {}

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        keyed = self._keyed.get(key)
        if keyed is None:
            keyed = self._keyed[key] = hmac.new(key, digestmod=self.digest_method)
        mac = keyed.copy()
        mac.update(value)
        return mac.digest()


class ReusingSigner(TimestampSigner):
    """itsdangerous' timestamp signer with each derived key computed once per signer rather than
    once per signature, and the timestamp encoded once per second."""

    def __init__(
        self,
        secret_keys: list[bytes],
        salt: bytes,
        *,
        key_derivation: str | None = None,
        digest_method: Any = hashlib.sha1,
    ) -> None:
        super().__init__(
            secret_keys,
            salt=salt,
            key_derivation=key_derivation,
            digest_method=digest_method,
            algorithm=KeyedHMAC(digest_method),
        )
        self._derived: dict[bytes, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        raw = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        key = self._derived.get(raw)
        if key is None:
            key = self._derived[raw] = super().derive_key(raw)
        return key

    #: (timestamp, separator + its encoding): tokens of the same second share it.
    _stamp: tuple[int, bytes] = (-1, b"")

    def sign(self, value: str | bytes) -> bytes:
        return self.sign_at(value, self.get_timestamp())

    def sign_at(self, value: str | bytes, now: int) -> bytes:
        """``TimestampSigner.sign`` for the timestamp ``now``."""
        value = want_bytes(value)
        sep = want_bytes(self.sep)
        stamp = self._stamp
        if stamp[0] != now:
            stamp = self._stamp = (now, sep + base64_encode(int_to_bytes(now)))
        value = value + stamp[1]
        return value + sep + self.get_signature(value)


class Serializer(URLSafeTimedSerializer):
    """``URLSafeTimedSerializer``'s tokens, with one reused signer, no zlib attempt on tiny
    payloads (``loads`` still reads compressed tokens) and the memos of the module docstring.
    ``serializer``, ``key_derivation`` and ``digest_method`` as in itsdangerous (Flask's sessions
    pass their own)."""

    def __init__(
        self,
        secret_keys: list[Any],
        salt: str,
        *,
        serializer: Any = None,
        key_derivation: str | None = None,
        digest_method: Any = hashlib.sha1,
    ) -> None:
        super().__init__(
            secret_keys,
            salt=salt,
            serializer=serializer,
            signer_kwargs={"key_derivation": key_derivation, "digest_method": digest_method},
        )
        self._signer = ReusingSigner(
            self.secret_keys,
            want_bytes(salt),
            key_derivation=key_derivation,
            digest_method=digest_method,
        )

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        if salt is None or want_bytes(salt) == self.salt:
            return self._signer
        return super().make_signer(salt)

    def dumps(self, obj: Any, salt: str | bytes | None = None) -> str:
        if salt is not None:
            return super().dumps(obj, salt)
        return self._sign(obj, _freeze(obj), self._signer.get_timestamp())

    def dumps_recent(self, obj: Any, frozen: Hashable | None = None) -> str:
        """A token for ``obj``: the one signed in the last :data:`REUSE_SECONDS`, or a new one.
        ``frozen``: :func:`freeze_scalars` of ``obj`` (a dict) when the caller has it already."""
        if frozen is None:
            frozen = _freeze(obj)
        if frozen is None:
            return self.dumps(obj)
        key = (self, frozen)
        signer = self._signer
        if type(signer).get_timestamp is _PLAIN_TIMESTAMP:  # one row's form: no call for it
            now = int(time.time())
        else:
            now = signer.get_timestamp()
        found = _SIGNED.get(key)
        if found is not None and 0 <= now - found[1] < REUSE_SECONDS:
            return found[0]
        token = self._sign(obj, frozen, now)
        remember(_SIGNED, key, (token, now))
        return token

    def _sign(self, obj: Any, frozen: Hashable | None, now: int) -> str:
        payload = self.dump_payload(obj)
        token = self._signer.sign_at(payload, now).decode("utf-8")
        remember(_VERIFIED, (self, token), (payload, now, frozen))
        return token

    def dump_payload(self, obj: Any) -> bytes:
        raw = want_bytes(self.serializer.dumps(obj, **self.serializer_kwargs))
        if len(raw) >= _COMPRESS_FROM:
            return super().dump_payload(obj)
        return base64_encode(raw)

    def loads(  # type: ignore[override]
        self,
        s: str | bytes,
        max_age: int | None = None,
        return_timestamp: bool = False,
        salt: str | bytes | None = None,
    ) -> Any:
        if return_timestamp or salt is not None:
            return super().loads(s, max_age, return_timestamp, salt)
        key = (self, s)
        known = _VERIFIED.get(key)
        if known is None:
            payload, signed = self._signer.unsign(s, max_age=max_age, return_timestamp=True)
            value = self.load_payload(payload)  # a payload that does not load is not remembered
            remember(_VERIFIED, key, (payload, int(signed.timestamp()), _freeze(value)))
            return value
        payload, stamp, frozen = known
        if max_age is not None:
            _check_age(self._signer, stamp, max_age)
        # Scalars come back from their frozen copy; anything else is decoded afresh.
        return self.load_payload(payload) if frozen is None else _thaw(frozen)


def _check_age(signer: TimestampSigner, stamp: int, max_age: int) -> None:
    """The age checks of ``TimestampSigner.unsign``, with its messages."""
    age = signer.get_timestamp() - stamp
    if age > max_age:
        raise SignatureExpired(
            f"Signature age {age} > {max_age} seconds",
            date_signed=signer.timestamp_to_datetime(stamp),
        )
    if age < 0:
        raise SignatureExpired(
            f"Signature age {age} < 0 seconds", date_signed=signer.timestamp_to_datetime(stamp)
        )


def freeze_scalars(values: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """A hashable copy of a mapping of string names to JSON scalars, ``((name, type, value),
    ...)`` (types kept: ``1`` is not ``True``), for use as a memo key; ``None`` when a value is
    anything else. Thawed, it must be what its JSON decodes to: names other than strings (JSON
    makes ``1`` into ``"1"``) and ``-0.0`` (equal to ``0.0``, with the same hash, but other JSON)
    are not frozen."""
    if not values:
        return ()
    items = []
    for name, item in values.items():
        kind = type(item)
        if (
            kind not in _SCALARS
            or type(name) is not str
            or (kind is float and item == 0.0 and math.copysign(1.0, item) < 0)
        ):
            return None
        items.append((name, kind, item))
    return tuple(items)


def _freeze(value: Any) -> Hashable | None:
    """A hashable copy of a string, or of a dict of JSON scalars; ``None`` for anything else
    (signed anew each time, decoded afresh from its payload)."""
    if type(value) is str:
        return value
    if type(value) is dict:
        return freeze_scalars(value)
    return None


def _thaw(frozen: Any) -> Any:
    """The value :func:`_freeze` made ``frozen`` from, as a new object."""
    if type(frozen) is str:
        return frozen
    return {name: item for name, _, item in frozen}


def remember(memo: dict[Any, Any], key: Any, value: Any, limit: int | None = None) -> None:
    """``memo[key] = value`` in a memo bounded to ``limit`` entries (default ``_MEMO_MAX``),
    dropping the oldest first."""
    limit = _MEMO_MAX if limit is None else limit
    while len(memo) >= limit:
        try:
            del memo[next(iter(memo))]
        except (KeyError, RuntimeError, StopIteration):  # another thread got there first
            break
    memo[key] = value
