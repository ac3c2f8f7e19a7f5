"""``ActionsBlueprint`` and ``Action``: registering server actions and fragments on a blueprint.

An action is a plain function. Registering it adds a real Flask endpoint (``POST
<url_prefix>/<name>``, endpoint ``"<blueprint>.<name>"``) whose view runs the request lifecycle in
:mod:`flask_hx_actions.pipeline`; the function itself stays callable as it was.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint
from flask.sansio.blueprints import BlueprintSetupState
from flask.templating import _default_template_ctx_processor
from werkzeug.datastructures import MultiDict

from .fragments import (
    CacheScope,
    Fragment,
    TagsSpec,
    _check_tags,
    _param_names,
    tags_from,
    takes_by_position,
)
from .ratelimits import LimitKey, apply_limit
from .results import Result, invalid
from .tag_memo import new_memo
from .validation import Validator, make_validator

if TYPE_CHECKING:
    from .extension import HxState

F = TypeVar("F", bound=Callable[..., Any])
Authorize = Callable[..., bool | None]


class Action:
    """A registered server action. Calling it calls the function; :meth:`invoke` validates first.

    Attributes a reader may use: ``name``, ``endpoint``, ``fn``, ``validator``, ``fragment``,
    ``bound_params`` (the parameters filled from signed bound arguments).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        endpoint: str,
        schema: Any = None,
        fragment: str | None = None,
        tags: TagsSpec = None,
        authorize: Authorize | None = None,
        login_required: bool = False,
        max_content_length: int | None = None,
        limit: str | None = None,
        limit_key: LimitKey = "user",
        idempotent: bool = True,
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.endpoint = endpoint
        self.validator: Validator | None = make_validator(schema) if schema is not None else None
        self.fragment = fragment
        self.authorize = authorize
        self.authorize_params = _param_names(authorize) if authorize else ()
        self.login_required = login_required
        self.max_content_length = max_content_length
        self.limit = limit
        self.limit_key = limit_key
        self.idempotent = idempotent
        self.is_async = inspect.iscoroutinefunction(fn)

        signature = inspect.signature(fn)
        fields = self.validator.value_names if self.validator else frozenset()
        self.accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        self.param_names = frozenset(
            p.name
            for p in signature.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
        bound = [
            p
            for p in signature.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in fields
        ]
        self.bound_params = tuple(p.name for p in bound)
        self.bound_set = frozenset(self.bound_params)
        self.required_bound = frozenset(p.name for p in bound if p.default is p.empty)

        self.tags_func = tags if callable(tags) else None
        self.static_tags = (
            frozenset() if tags is None or callable(tags) else frozenset(_check_tags(tags))
        )
        self.tags_params = _param_names(self.tags_func) if self.tags_func else ()
        #: The same names as a set: forms check that ``bind=`` holds them all, once per row.
        self.tags_param_set = frozenset(self.tags_params)
        self.tags_by_position = self.tags_func is not None and takes_by_position(self.tags_func)
        #: The tags function's answers per argument values, when it reads only them.
        self.tags_memo: dict[Any, frozenset[str]] | None = new_memo(
            self.tags_func, self.tags_by_position
        )
        self._view: Callable[..., Any] | None = None

    def __repr__(self) -> str:
        return f"<Action {self.endpoint}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    # -- arguments -------------------------------------------------------------------------------

    def tags_for(self, args: Mapping[str, Any]) -> frozenset[str]:
        """The tags this action invalidates for these bound / validated arguments."""
        if self.tags_func is None:
            return self.static_tags
        return tags_from(
            self.static_tags,
            self.tags_func,
            self.tags_params,
            args,
            self.tags_by_position,
            self.tags_memo,
        )

    def call_args(self, bound: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of the function: bound arguments plus the validated fields it
        names (all of them when it takes ``**kwargs``)."""
        args = dict(bound)
        for key, value in values.items():
            if self.accepts_any or key in self.param_names:
                args[key] = value
        return args

    def check_bind(self, bind: Mapping[str, Any]) -> None:
        unknown = set(bind) - set(self.bound_params)
        missing = self.required_bound - set(bind)
        if unknown or missing:
            raise TypeError(
                f"action_form({self.endpoint!r}): bind= must give the action's bound parameters "
                f"{list(self.bound_params)}; missing {sorted(missing)}, unknown {sorted(unknown)}."
            )

    # -- testing without HTTP --------------------------------------------------------------------

    def invoke(
        self,
        form: Mapping[str, Any] | None = None,
        *,
        bound: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> Result:
        """Validate ``form`` like a submit would, then run the body and return its :class:`Result`.

        No HTTP, CSRF, transaction or rendering: this is for unit tests of the action itself.

        >>> add.invoke({"title": ""}).errors["title"]  # doctest: +SKIP
        ['Length must be between 1 and 100.']
        """
        bound = dict(bound or {})
        missing = self.required_bound - set(bound)
        if missing:
            raise TypeError(f"{self.endpoint}.invoke() needs bound={{...}} for {sorted(missing)}.")
        values: dict[str, Any] = {}
        if self.validator is not None:
            data = form if isinstance(form, MultiDict) else MultiDict(dict(form or {}))
            file_data: MultiDict[str, Any] = MultiDict(dict(files or {}))
            values, errors = self.validator.validate(data, file_data)
            if errors:
                return invalid(errors)
        from .pipeline import as_result, call_collecting_tags

        returned, _tags = call_collecting_tags(self, self.call_args(bound, values))
        return as_result(self, returned)


class ActionsBlueprint(Blueprint):
    """A Flask blueprint with :meth:`action` and :meth:`fragment`.

    >>> bp = ActionsBlueprint("todos", __name__, url_prefix="/todos")
    >>> @bp.action("add", schema=NewTodoSchema, tags=["todos"], fragment="todo-list")
    ... def add(title: str):
    ...     db.session.add(Todo(title=title))
    ...     return ok()
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Flask gives every blueprint a copy of its default context processor (``g``,
        # ``request``, ``session``), which the app runs already: every template context of a
        # request to this blueprint would compute them twice (15k instructions per htmx answer).
        own = self.template_context_processors[None]
        if _default_template_ctx_processor in own:
            own.remove(_default_template_ctx_processor)

    def action(
        self,
        name: str | None = None,
        *,
        schema: Any = None,
        fragment: str | None = None,
        tags: TagsSpec = None,
        authorize: Authorize | None = None,
        login_required: bool = False,
        max_content_length: int | None = None,
        limit: str | None = None,
        limit_key: LimitKey = "user",
        idempotent: bool = True,
    ) -> Callable[[Callable[..., Any]], Action]:
        """Register the decorated function as an action at ``POST <url_prefix>/<name>``.

        :param name: URL segment and endpoint name (defaults to the function's name).
        :param schema: a marshmallow ``Schema`` class or a WTForms ``Form`` class; validated fields
            arrive as keyword arguments. Without it the action gets no form fields.
        :param fragment: the fragment re-rendered as the action's own answer to htmx.
        :param tags: tags the action invalidates; a list, or a function of the action's arguments.
        :param authorize: ``authorize(**args) -> bool``; ``False`` refuses with 403 (401 when no
            user is signed in). It receives the arguments its signature names.
        :param login_required: refuse with 401 when no user is signed in.
        :param max_content_length: this action's body limit in bytes (uploads).
        :param limit: a Flask-Limiter rate limit such as ``"5/minute"`` (429 past it).
        :param limit_key: whose requests are counted together: ``"user"`` (the signed-in user,
            else the client address), ``"ip"``, or a function returning a key.
        :param idempotent: ``False`` skips the idempotency-key store for this action (for
            actions that are safe to repeat, such as "mark as done", so they do not pay for it).
        """

        def decorator(fn: Callable[..., Any]) -> Action:
            action_name = name or fn.__name__
            if "/" in action_name or not action_name:
                raise ValueError(f"action name {action_name!r} must be one URL segment.")
            action = Action(
                fn,
                name=action_name,
                endpoint=f"{self.name}.{action_name}",
                schema=schema,
                fragment=fragment,
                tags=tags,
                authorize=authorize,
                login_required=login_required,
                max_content_length=max_content_length,
                limit=limit,
                limit_key=limit_key,
                idempotent=idempotent,
            )
            from .pipeline import make_view

            view = make_view(action)
            self.add_url_rule(
                f"/{action_name}", endpoint=action_name, view_func=view, methods=["POST"]
            )

            def register(state: BlueprintSetupState) -> None:
                endpoint = f"{state.name_prefix}.{state.name}.{action_name}".lstrip(".")
                action.endpoint = endpoint
                _state(state.app).add_action(endpoint, action, view)
                apply_limit(state.app, action, endpoint)  # type: ignore[arg-type]

            self.record(register)
            return action

        return decorator

    def fragment(
        self,
        name: str,
        *,
        template: str | None = None,
        block: str | None = None,
        tags: TagsSpec = None,
        element: str = "div",
        cache: CacheScope | None = None,
        login_required: bool = False,
        authorize: Authorize | None = None,
    ) -> Callable[[F], F]:
        """Register a fragment: a template (or one ``block`` of it) and a context function.

        The function's parameters are the fragment's parameters (DOM id ``name-<values>``);
        it returns the template context. ``tags`` are static or a function of the parameters.
        Its keyword-only parameters (each with a default) are given values: what a template may
        pass when it renders the region (``fragment("todo", id=t.id, todo=t)``), never part of
        the region's identity and never taken from a client.

        :param element: the region's tag (``"li"`` for list rows, ``"tr"`` for table rows).
        :param cache: ``None`` (render every time, the default), ``"user"`` (cached per session
            and user) or ``"global"`` (shared by everyone; not for fragments with forms). Keys
            include the versions of the fragment's tags, so an action's invalidation is immediate.
        :param login_required: the fragment endpoint answers 401 to anonymous users, and pages
            render the region empty for them.
        :param authorize: ``authorize(**params) -> bool``, checked like ``login_required``.
        """

        def decorator(fn: F) -> F:
            fragment = Fragment.build(
                name,
                fn,
                template=template,
                block=block,
                tags=tags,
                element=element,
                cache=cache,
                login_required=login_required,
                authorize=authorize,
            )
            self.record(lambda state: _state(state.app).add_fragment(fragment))
            return fn

        return decorator


def _state(app: Any) -> HxState:
    try:
        return app.extensions["hx_actions"]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError(
            "Create HxActions(app) (or call hx.init_app(app)) before registering an "
            "ActionsBlueprint on the app."
        ) from None
