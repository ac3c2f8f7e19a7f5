"""flask-hx-actions: server actions for Flask, the hypermedia way.

An action is a function registered on an :class:`ActionsBlueprint`. It is a plain HTML form POST
target (Post/Redirect/Get without JavaScript) and, for htmx, answers with its own fragment plus
every region whose tags it invalidated, out-of-band.

>>> from flask_hx_actions import ActionsBlueprint, HxActions, ok
"""

from __future__ import annotations

from .actions import Action, ActionsBlueprint
from .errors import (
    ActionRefused,
    BoundArgumentsInvalid,
    ContentTooLarge,
    CSRFRefused,
    InvalidUpload,
    NotAuthenticated,
    NotAuthorized,
    OriginRefused,
)
from .extension import HxActions
from .idempotency import IdempotencyKeyInFlight, IdempotencyKeyInvalid, IdempotencyKeyReused
from .pipeline import revalidate
from .results import Result, fail, not_found, ok, redirect_to
from .validation import FileUpload, Upload

__version__ = "0.1.0.dev0"

# The idempotency stores need SQLAlchemy or redis, which are optional: import them from
# flask_hx_actions.idempotency_stores.

__all__ = [
    "Action",
    "ActionRefused",
    "ActionsBlueprint",
    "BoundArgumentsInvalid",
    "CSRFRefused",
    "ContentTooLarge",
    "FileUpload",
    "HxActions",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyInvalid",
    "IdempotencyKeyReused",
    "InvalidUpload",
    "NotAuthenticated",
    "NotAuthorized",
    "OriginRefused",
    "Result",
    "Upload",
    "fail",
    "not_found",
    "ok",
    "redirect_to",
    "revalidate",
]
