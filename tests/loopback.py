"""A tiny HTTP client for servers the tests and the soak start on 127.0.0.1 (gunicorn)."""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def replayed(self) -> bool:
        return self.headers.get("idempotent-replayed") == "true"


def request(
    port: int,
    method: str,
    path: str,
    body: str | None,
    headers: dict[str, str],
    timeout: float,
) -> Answer:
    """One request on a fresh connection to 127.0.0.1:``port``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()
