"""htmx request detection and response headers, named after the headers they read or set.

Each helper is one header; the docstring gives the reason to use it. Header values are checked so
a value from the request never splits a response header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flask import Request, Response

RequestKind = Literal["htmx", "json", "plain"]
SwapStyle = Literal[
    "innerHTML", "outerHTML", "beforebegin", "afterbegin", "beforeend", "afterend", "delete", "none"
]


@dataclass(frozen=True, slots=True)
class HtmxDetails:
    """The htmx headers of a request, typed (``HtmxDetails.of(request)``)."""

    request: bool
    boosted: bool
    history_restore_request: bool
    target: str | None
    trigger: str | None
    trigger_name: str | None
    current_url: str | None

    @classmethod
    def of(cls, request: Request) -> HtmxDetails:
        headers = request.headers
        return cls(
            request=headers.get("HX-Request") == "true",
            boosted=headers.get("HX-Boosted") == "true",
            history_restore_request=headers.get("HX-History-Restore-Request") == "true",
            target=headers.get("HX-Target"),
            trigger=headers.get("HX-Trigger"),
            trigger_name=headers.get("HX-Trigger-Name"),
            current_url=headers.get("HX-Current-URL"),
        )


def request_kind(request: Request) -> RequestKind:
    """How to answer: ``"htmx"`` for htmx requests that swap fragments, ``"json"`` for callers that
    prefer JSON, ``"plain"`` for browser forms. Boosted and history-restore requests want whole
    pages, so they count as plain."""
    environ = request.environ  # the headers, without EnvironHeaders (see headers.py)
    if (
        environ.get("HTTP_HX_REQUEST") == "true"
        and environ.get("HTTP_HX_BOOSTED") != "true"
        and environ.get("HTTP_HX_HISTORY_RESTORE_REQUEST") != "true"
    ):
        return "htmx"
    accept = environ.get("HTTP_ACCEPT", "")
    if "json" in accept:
        best = request.accept_mimetypes.best_match(("text/html", "application/json"))
        if best == "application/json":
            return "json"
    return "plain"


def _header_value(value: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError("Header values cannot contain CR, LF or NUL.")
    return value


def hx_redirect(response: Response, url: str) -> Response:
    """``HX-Redirect``: htmx loads ``url`` as a full page (it ignores a 3xx ``Location``)."""
    response.headers["HX-Redirect"] = _header_value(url)
    return response


def hx_location(response: Response, url: str) -> Response:
    """``HX-Location``: htmx fetches ``url`` and swaps it in without a full page load."""
    response.headers["HX-Location"] = _header_value(url)
    return response


def reswap(response: Response, style: SwapStyle) -> Response:
    """``HX-Reswap``: override the swap style; ``"none"`` when the answer holds only OOB parts."""
    response.headers["HX-Reswap"] = style
    return response


def retarget(response: Response, selector: str) -> Response:
    """``HX-Retarget``: swap into another element than the form's ``hx-target``."""
    response.headers["HX-Retarget"] = _header_value(selector)
    return response


def trigger_client_event(response: Response, name: str) -> Response:
    """``HX-Trigger``: fire an event in the browser once the answer arrives."""
    existing = response.headers.get("HX-Trigger")
    name = _header_value(name)
    response.headers["HX-Trigger"] = f"{existing}, {name}" if existing else name
    return response
