"""One exception per kind of refusal: a Werkzeug HTTP exception with a status and a message.

An app can register its own handler for one of them (``app.register_error_handler(OriginRefused,
handler)``) or for a status code (``@app.errorhandler(403)``): Flask prefers both to the library's
own handler, which is registered for :class:`ActionRefused` only, as the fallback.
"""

from __future__ import annotations

from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import (
    BadRequest,
    Forbidden,
    HTTPException,
    RequestEntityTooLarge,
    Unauthorized,
)


class ActionRefused(HTTPException):
    """Base of every refusal: the action did not run and nothing was written."""

    #: A short machine-readable code, sent to JSON callers as ``"code"``.
    hx_code = "refused"
    #: The htmx answer carries a fresh idempotency key for the form (``HX-Actions: 1; key=...``).
    renews_key = False


class ContentTooLarge(ActionRefused, RequestEntityTooLarge):
    """413: the body (or one upload) is larger than the action accepts."""

    hx_code = "too_large"
    description = "The submitted data is too large."


class OriginRefused(ActionRefused, Forbidden):
    """403: the request comes from another site (``Sec-Fetch-Site`` / ``Origin``)."""

    hx_code = "cross_origin"
    description = "This form was submitted from another site and was refused."


class CSRFRefused(ActionRefused, CSRFError):  # type: ignore[misc]
    """400: the CSRF token is missing, wrong or expired (a Flask-WTF ``CSRFError``)."""

    hx_code = "csrf"
    description = (
        "The form has expired or was not sent by this site. Reload the page and try again."
    )


class BoundArgumentsInvalid(ActionRefused, BadRequest):
    """400: the signed bound arguments are missing, tampered with, expired or not this user's."""

    hx_code = "bad_bound_arguments"
    description = "This form is no longer valid. Reload the page and try again."


class NotAuthenticated(ActionRefused, Unauthorized):
    """401: the action needs a signed-in user."""

    hx_code = "unauthenticated"
    description = "Sign in to do this."


class NotAuthorized(ActionRefused, Forbidden):
    """403: the signed-in user may not do this."""

    hx_code = "forbidden"
    description = "You are not allowed to do this."


class InvalidUpload(ActionRefused, BadRequest):
    """400: a body that cannot be read: a multipart body that cannot be parsed (for example too
    many parts), or one that ends before its ``Content-Length``."""

    hx_code = "bad_request"
    description = "The submitted form could not be read."


__all__ = [
    "ActionRefused",
    "BoundArgumentsInvalid",
    "CSRFRefused",
    "ContentTooLarge",
    "InvalidUpload",
    "NotAuthenticated",
    "NotAuthorized",
    "OriginRefused",
]
