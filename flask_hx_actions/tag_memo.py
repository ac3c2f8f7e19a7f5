"""Tag functions that read nothing but their arguments, remembered per argument values.

A page asks for a row's tags twice per row: its fragment's (``tags=lambda id: [f"todo:{id}"]``,
for the region's ``data-hx-tags`` and its opening tag's memo) and its form's action's (for the
form's ``data-hx-tags``). Each call builds a list, formats a string and makes a frozenset, and on
a page of 200 rows those calls were about a twelfth of the page's time. When a tag function can
only compute its answer from its arguments, the same argument values give the same tags, so the
answer is remembered: the next page gets the very same frozenset back, whose hash is already
known to the memos that use it as part of a key.

Whether a function can is decided once, when its fragment or action is registered, from its code
and conservatively (:func:`reads_only_arguments`): it names nothing (no global, builtin, attribute
or import: its code's ``co_names`` is empty, and so is that of every code object nested in it,
such as a comprehension), it closes over nothing, and its defaults, if any, are scalars. Such
code can only combine its arguments and constants with operators, formatting and containers, and
the memo passes it exact ``str``, ``int``, ``float``, ``bool`` or ``None`` values only (no
subclass, which could format itself by other rules). Anything else, such as a tag function that
reads a row's list from the database or calls ``str()``, is called every time, as before.

Written here because no library answers "is this function pure?"; the check errs on the side of
calling the function.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Hashable
from typing import Any

#: Argument types a remembered tag function is given: their operators and formatting read
#: nothing but the values themselves.
_SCALARS = frozenset({str, int, float, bool, type(None)})
#: Entries per tag function (a page of rows uses one per row); oldest out first.
MEMO_MAX = 8192


def reads_only_arguments(func: Callable[..., Any]) -> bool:
    """True when ``func`` is a plain Python function whose answer can depend on its arguments
    only (see the module docstring); False when that is not certain."""
    if not isinstance(func, types.FunctionType) or func.__closure__:
        return False
    defaults = [*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()]
    if any(type(value) not in _SCALARS for value in defaults):
        return False
    return _names_nothing(func.__code__)


def new_memo(
    func: Callable[..., Any] | None, by_position: bool
) -> dict[Hashable, frozenset[str]] | None:
    """An empty memo for the tag function ``func`` of a fragment or an action, when its answers
    can be remembered: it reads only its arguments and is called with them by position
    (``fragments.takes_by_position``); else ``None`` (called every time)."""
    if func is None or not by_position or not reads_only_arguments(func):
        return None
    return {}


def _names_nothing(code: types.CodeType) -> bool:
    """No names in ``code`` or in the code objects it holds (their free variables are cells of
    the code around them, which holds no closure of its own)."""
    if code.co_names:
        return False
    return all(
        _names_nothing(const) for const in code.co_consts if isinstance(const, types.CodeType)
    )


def memo_key(value: Any) -> Hashable | None:
    """A key for one argument value, telling apart values that are equal across types (``1``,
    ``1.0`` and ``True``); None for a value that is not an exact scalar, or is ``-0.0`` (equal
    to ``0.0``, with the same hash, but formatted otherwise). ``int`` and ``str`` values are
    their own keys: no value of another type the memo accepts equals them."""
    kind = type(value)
    if kind is int or kind is str:
        return value  # type: ignore[no-any-return]
    if kind not in _SCALARS or (kind is float and value == 0.0 and math.copysign(1.0, value) < 0):
        return None
    return (kind, value)
