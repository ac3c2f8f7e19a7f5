"""Tag versions and the optional fragment cache, in process by default and in Redis when
``HX_ACTIONS_REDIS_URL`` is set (so several workers agree).

A tag's version goes up each time an action that invalidates it commits. A fragment's ETag and
its cache key are built from the versions of its tags, so neither needs to be deleted: a new
version makes a new key, and old entries age out (LRU in process, TTL in Redis).

We keep this small store ourselves rather than use Flask-Caching: what it needs is two operations
(versions of several tags in one round trip, and increments) plus a bounded LRU, and the cached
HTML still gets its per-render values (CSRF token, idempotency keys) filled in at serve time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

from flask import Response, after_this_request, g, has_request_context
from flask.globals import _cv_request

from .context import flags

log = logging.getLogger("flask_hx_actions")


class TagVersions(Protocol):
    def get(self, tags: Iterable[str]) -> dict[str, int]: ...

    def bump(self, tags: Iterable[str]) -> None:
        """Increment the versions of ``tags``."""


class FragmentCache(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl: int) -> None: ...


class MemoryTagVersions:
    """Versions in this process (one worker); a lock keeps increments exact across threads."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, tags: Iterable[str]) -> dict[str, int]:
        versions = self._versions
        return {tag: versions.get(tag, 0) for tag in tags}

    def bump(self, tags: Iterable[str]) -> None:
        with self._lock:
            for tag in tags:
                self._versions[tag] = self._versions.get(tag, 0) + 1


class MemoryFragmentCache:
    """A bounded LRU of rendered HTML (``HX_ACTIONS_FRAGMENT_CACHE_SIZE`` entries) with a TTL:
    keys carry tag versions so entries do not go stale, but signed values inside them expire."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def set(self, key: str, value: str, ttl: int) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class RedisTagVersions:
    """Versions in a Redis hash, shared by every worker and machine.

    A page of many cached fragments would pay one round trip per fragment for its tags'
    versions; instead the first lookup of a request reads the whole hash once (``HGETALL``) and
    the request's later lookups use that snapshot, as long as the hash holds at most
    ``snapshot_max`` tags (checked every 10 s). A bump in the request drops its snapshot and
    keeps the new versions its increments returned: an action's answer renders the fragments of
    the tags it invalidated, and their lookups then need no round trip and no snapshot (whose
    size grows with every tag the app has ever bumped).
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "hx-actions",
        snapshot_max: int = 5000,
        url: str | None = None,
    ) -> None:
        self._redis = client
        self._key = f"{prefix}:tag-versions"
        #: The URL the client was made from (an idempotency store on the same URL shares it).
        self.url = url
        self._snapshot_max = snapshot_max
        self._small = False
        self._checked_at = float("-inf")

    def get(self, tags: Iterable[str]) -> dict[str, int]:
        tags = list(tags)
        if not tags:
            return {}
        if _cv_request.get(None) is not None:
            bumped: dict[str, int] | None = flags().get("_hx_tag_bumped")
            if bumped is not None and all(tag in bumped for tag in tags):
                return {tag: bumped[tag] for tag in tags}
        snapshot = self._snapshot()
        if snapshot is not None:
            return {tag: snapshot.get(tag, 0) for tag in tags}
        values = self._redis.hmget(self._key, tags)
        return {tag: int(v) if v is not None else 0 for tag, v in zip(tags, values, strict=True)}

    def bump(self, tags: Iterable[str]) -> None:
        """Increment the versions in one round trip. In a request, the new versions the
        increments return are this request's versions of those tags."""
        tags = list(tags)
        if not tags:
            return
        pipe = self._redis.pipeline(transaction=False)
        for tag in tags:
            pipe.hincrby(self._key, tag, 1)
        replies = pipe.execute()
        if has_request_context():
            g.pop("_hx_tag_snapshot", None)  # older than the increments
            values = flags()
            bumped: dict[str, int] = values.get("_hx_tag_bumped") or {}
            bumped.update(zip(tags, (int(v) for v in replies), strict=True))
            values["_hx_tag_bumped"] = bumped

    @property
    def client(self) -> Any:
        return self._redis

    @property
    def hash_key(self) -> str:
        """The Redis hash holding the versions (one field per tag)."""
        return self._key

    def bumped_elsewhere(self) -> None:
        """The versions were incremented by another command (an idempotency store's completion,
        in the same round trip): this request's snapshot is out of date."""
        if has_request_context():
            g.pop("_hx_tag_snapshot", None)
            g.pop("_hx_tag_bumped", None)

    def _snapshot(self) -> dict[str, int] | None:
        if _cv_request.get(None) is None:
            return None
        snapshot: dict[str, int] | None = flags().get("_hx_tag_snapshot")
        if snapshot is not None:
            return snapshot
        now = time.monotonic()
        if now - self._checked_at > 10:
            self._small = int(self._redis.hlen(self._key)) <= self._snapshot_max
            self._checked_at = now
        if not self._small:
            return None
        snapshot = g._hx_tag_snapshot = _decode_snapshot(self._redis.hgetall(self._key))
        return snapshot


def _decode_snapshot(raw: dict[Any, Any]) -> dict[str, int]:
    return {bytes(k).decode(): int(v) for k, v in raw.items()}


class RedisFragmentCache:
    """Fragments in Redis, shared by every worker, with a small LRU in this process in front.

    A key names the fragment, its parameters, its tags' versions and its user scope, so the HTML
    under one key never changes: a copy kept in process (until the entry's Redis expiry) is never
    stale, and a page of many cached fragments costs a round trip only for the ones this worker
    has not served yet.
    """

    def __init__(self, client: Any, prefix: str = "hx-actions", local_size: int = 2000) -> None:
        self._redis = client
        self._prefix = f"{prefix}:fragment:"
        self._local = MemoryFragmentCache(local_size)

    def get(self, key: str) -> str | None:
        found = self._local.get(key)
        if found is not None:
            return found
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._prefix + key)
        pipe.pttl(self._prefix + key)
        value, pttl = pipe.execute()
        if value is None:
            return None
        html = bytes(value).decode()
        if pttl and pttl > 0:
            self._local.set(key, html, max(1, pttl // 1000))
        return html

    def set(self, key: str, value: str, ttl: int) -> None:
        """Keep ``value`` in process now; in a request, write it to Redis once the answer has
        been sent (every entry the request made, in one pipeline), so the round trip is not part
        of the answer's latency. A write that is lost (the worker dies first, Redis fails) costs
        another worker one render: the entry under a key never changes."""
        ttl = max(1, ttl)
        self._local.set(key, value, ttl)
        entry = (self._prefix + key, value.encode(), ttl)
        if not has_request_context():
            self._redis.set(entry[0], entry[1], ex=ttl)
            return
        values = flags()
        pending: list[tuple[str, bytes, int]] | None = values.get("_hx_cache_writes")
        if pending is None:
            pending = values["_hx_cache_writes"] = []
            after_this_request(lambda response: self._after(response, pending))
        pending.append(entry)

    def _after(self, response: Response, pending: list[tuple[str, bytes, int]]) -> Response:
        response.call_on_close(lambda: self.write(pending))
        return response

    def write(self, entries: list[tuple[str, bytes, int]]) -> None:
        """Write ``(redis key, value, ttl)`` entries in one pipeline (errors are logged)."""
        if not entries:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for name, value, ttl in entries:
                pipe.set(name, value, ex=ttl)
            pipe.execute()
        except Exception:
            log.warning(
                "could not write %d fragment cache entries to Redis", len(entries), exc_info=True
            )
        entries.clear()


def make_stores(redis_url: str | None, size: int) -> tuple[TagVersions, FragmentCache]:
    if not redis_url:
        return MemoryTagVersions(), MemoryFragmentCache(size)
    import redis

    client = redis.Redis.from_url(redis_url)
    return RedisTagVersions(client, url=redis_url), RedisFragmentCache(client, local_size=size)
