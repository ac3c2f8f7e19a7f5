"""Blinker signals the library sends, so apps and tests can observe actions without patching.

Every signal's sender is the Flask app. Signals are sent only when something listens, so an
app without receivers pays nothing for them.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: An action is about to run its body: ``action`` (the :class:`~flask_hx_actions.Action`).
action_started = _signals.signal("hx-actions.action-started")
#: An action finished: ``action``, ``result`` (the :class:`~flask_hx_actions.results.Result`).
action_finished = _signals.signal("hx-actions.action-finished")
#: A request to an action was refused before its body ran: ``endpoint``, ``error``.
action_refused = _signals.signal("hx-actions.action-refused")
#: A fragment was rendered: ``name``, ``params``, ``dom_id``, ``oob`` (True when out-of-band).
fragment_rendered = _signals.signal("hx-actions.fragment-rendered")

__all__ = ["action_finished", "action_refused", "action_started", "fragment_rendered"]
