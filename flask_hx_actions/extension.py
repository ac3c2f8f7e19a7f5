"""``HxActions``: the Flask extension object, its settings and its per-app state.

One ``HxActions`` object can serve several apps (``init_app``); everything that belongs to one app
lives in ``app.extensions["hx_actions"]`` (an :class:`HxState`). Every setting is an
``HX_ACTIONS_*`` config key with a default set here and listed in the README.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask

from . import cli, forms, pipeline, sessions, syncs, url_adapters, wrappers
from .cache import make_stores
from .context import IDENTITY, current_app_object, flags, forget_identity
from .errors import ActionRefused
from .fragments import Fragment
from .responses import Candidate, fragment_endpoint

if TYPE_CHECKING:
    from .actions import Action

IdentityLoader = Callable[[], Any]
Authorizer = Callable[["Action", Mapping[str, Any]], bool | None]

MiB = 1024 * 1024

#: Every setting with its default (the README's configuration table lists the same).
DEFAULTS: dict[str, Any] = {
    "HX_ACTIONS_MAX_CONTENT_LENGTH": 1 * MiB,
    "HX_ACTIONS_MAX_FORM_MEMORY_SIZE": 500_000,
    "HX_ACTIONS_MAX_FORM_PARTS": 200,
    "HX_ACTIONS_TRUSTED_ORIGINS": (),
    "HX_ACTIONS_ORIGIN": None,
    "HX_ACTIONS_BOUND_MAX_AGE": 24 * 3600,
    "HX_ACTIONS_DEFAULT_REDIRECT": "/",
    "HX_ACTIONS_OLD_INPUT_MAX_VALUE": 500,
    "HX_ACTIONS_OLD_INPUT_MAX_BYTES": 1500,
    "HX_ACTIONS_TRUST_REQUEST_ID": False,
    "HX_ACTIONS_SQLALCHEMY_TRANSACTIONS": True,
    "HX_ACTIONS_STATIC_URL_PATH": "/_hx/static",
    "HX_ACTIONS_SESSION_SAMESITE": "Lax",
    "HX_ACTIONS_FAST_SESSION": True,
    "HX_ACTIONS_FAST_REQUEST": True,
    "HX_ACTIONS_FAST_ENSURE_SYNC": True,
    "HX_ACTIONS_FAST_URL_ADAPTER": True,
    "HX_ACTIONS_IDEMPOTENCY_STORE": "auto",
    "HX_ACTIONS_IDEMPOTENCY_TTL": 24 * 3600,
    "HX_ACTIONS_RATELIMIT_STORAGE_URI": "memory://",
    "HX_ACTIONS_REDIS_URL": None,
    "HX_ACTIONS_FRAGMENT_CACHE_SIZE": 2000,
    "HX_ACTIONS_FRAGMENT_CACHE_TTL": 300,
    "HX_ACTIONS_FRAGMENTS_URL_PATH": "/_hx/fragments",
}


def _package_dir(name: str) -> str:
    """``static/`` and ``templates/``: inside the package in a wheel, beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / name):
        if candidate.is_dir():
            return str(candidate)
    raise RuntimeError(f"flask-hx-actions is installed without its {name}/ folder.")


class HxState:
    """What the extension keeps for one app: the registries and the hooks."""

    def __init__(self, app: Flask, extension: HxActions) -> None:
        self.app = app
        self.extension = extension
        self.actions: dict[str, Action] = {}
        self.views: dict[str, Callable[..., Any]] = {}
        self.fragments: dict[str, Fragment] = {}
        self.url_cache: dict[tuple[str, str], str] = {}
        #: Per (action endpoint, script root): what every action_form of that action shares.
        self.form_plans: dict[tuple[str, str], Any] = {}
        #: (CSRFProtect, endpoint) pairs whose view has been exempted from CSRFProtect's hook.
        self.csrf_exempted: set[tuple[Any, str]] = set()
        #: A region list (_hx_regions) -> the regions it names (see responses._candidates).
        self.region_lists: dict[str, tuple[Candidate, ...]] = {}
        #: Fragments seen rendering an action_form (they never get a 304: keys must be fresh).
        self.fragment_forms: set[str] = set()
        #: True once a fragment with ``cache=`` is registered: renders then read tag versions.
        self.caches_fragments = False
        self.tag_versions, self.fragment_cache = make_stores(
            app.config["HX_ACTIONS_REDIS_URL"], int(app.config["HX_ACTIONS_FRAGMENT_CACHE_SIZE"])
        )

    def add_action(self, endpoint: str, action: Action, view: Callable[..., Any]) -> None:
        if endpoint in self.actions and self.actions[endpoint] is not action:
            raise ValueError(f"An action is already registered at endpoint {endpoint!r}.")
        self.actions[endpoint] = action
        self.views[endpoint] = view

    def add_fragment(self, fragment: Fragment) -> None:
        existing = self.fragments.get(fragment.name)
        if existing is not None and existing.func is not fragment.func:
            raise ValueError(
                f"Fragment {fragment.name!r} is registered twice; fragment names are unique "
                "across the app."
            )
        self.fragments[fragment.name] = fragment
        if fragment.cache is not None:
            self.caches_fragments = True

    def fragment(self, name: str) -> Fragment:
        try:
            return self.fragments[name]
        except KeyError:
            from .fragments import FragmentError

            raise FragmentError(f"No fragment named {name!r} is registered.") from None

    def identity(self) -> Any:
        """The signed-in user's id (``None`` when anonymous), loaded once per request and again
        after anything that can change it (:func:`forget_identity`)."""
        values = flags()
        value = values.get(IDENTITY, _UNKNOWN)
        if value is not _UNKNOWN:
            return value
        loader = self.extension._identity_loader
        value = loader() if loader is not None else _flask_login_identity()
        values[IDENTITY] = value
        return value


class HxActions:
    """The extension: ``HxActions(app)`` or ``hx = HxActions(); hx.init_app(app)``.

    :param identity: a function returning the signed-in user's id or ``None``; bound arguments
        and idempotency keys are scoped by it. Defaults to Flask-Login's ``current_user`` when
        the app has a ``LoginManager`` (``app.login_manager``), otherwise every request is
        anonymous.
    """

    def __init__(self, app: Flask | None = None, *, identity: IdentityLoader | None = None) -> None:
        self._identity_loader = identity
        self._authorizers: list[Authorizer] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        samesite = app.config["HX_ACTIONS_SESSION_SAMESITE"]
        if samesite and app.config.get("SESSION_COOKIE_SAMESITE") is None:
            app.config["SESSION_COOKIE_SAMESITE"] = samesite
        sessions.install(app)
        wrappers.install(app)
        syncs.install(app)
        url_adapters.install(app)
        _forget_identity_on_flask_login()

        state = HxState(app, self)
        app.extensions["hx_actions"] = state

        assets = Blueprint(
            "hx_actions",
            __name__,
            static_folder=_package_dir("static"),
            static_url_path=app.config["HX_ACTIONS_STATIC_URL_PATH"],
            template_folder=_package_dir("templates"),
        )
        assets.add_url_rule(
            f"{app.config['HX_ACTIONS_FRAGMENTS_URL_PATH']}/<name>",
            endpoint="fragment",
            view_func=fragment_endpoint,
        )
        app.register_blueprint(assets)

        # The gate (size, origin, CSRF) must run before every other before_request hook: before
        # Flask-WTF's CSRFProtect (whatever the order of set-up) and before app hooks that could
        # read the body.
        app.before_request_funcs.setdefault(None, []).insert(0, pipeline.gate)
        app.after_request(pipeline.finish_response)
        app.register_error_handler(ActionRefused, pipeline.handle_refusal)
        app.cli.add_command(cli.hx_actions_cli)

        app.jinja_env.globals.update(
            action_form=forms.action_form,
            fragment=forms.fragment,
            hx_actions_head=forms.hx_actions_head,
            field=forms.field,
            old=forms.old,
            old_list=forms.old_list,
            field_errors=forms.field_errors,
            # The names hx_actions/macros.html calls (its macros shadow the names above).
            hx_action_form_impl=forms.action_form,
            hx_field_impl=forms.field,
            hx_fragment_impl=forms.fragment,
        )

    def identity_loader(self, fn: IdentityLoader) -> IdentityLoader:
        """Decorator: set the function that returns the signed-in user's id (or ``None``)."""
        self._identity_loader = fn
        return fn

    @staticmethod
    def identity_changed() -> None:
        """Say that the signed-in user changed during this request (a sign-in or sign-out in a
        plain view, with a custom identity loader): forms and per-user fragments rendered
        afterwards are scoped to the new one. Actions and Flask-Login need no call."""
        forget_identity()

    def authorizer(self, fn: Authorizer) -> Authorizer:
        """Decorator: an app-wide check ``fn(action, args) -> bool`` run before every action body.

        ``False`` refuses with 403 (401 when nobody is signed in); it runs after validation and
        before anything is written.
        """
        self._authorizers.append(fn)
        return fn


_UNKNOWN = object()


def _forget_identity_on_flask_login() -> None:
    """With Flask-Login installed, ``login_user`` and ``logout_user`` make the next use load the
    identity again (their signals; connecting twice keeps one connection)."""
    try:
        from flask_login import user_logged_in, user_logged_out
    except ImportError:
        return
    user_logged_in.connect(forget_identity)
    user_logged_out.connect(forget_identity)


def _flask_login_identity() -> Any:
    # The app itself, not its proxy: a proxied attribute miss raises and catches in Python.
    if getattr(current_app_object(), "login_manager", None) is None:
        return None
    from flask_login import current_user

    user = current_user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.get_id()


def state(app: Flask) -> HxState:
    return app.extensions["hx_actions"]  # type: ignore[no-any-return]
