"""``flask hx-actions ...``: maintenance commands of flask-hx-actions.

``HxActions.init_app`` adds the group to the app's CLI (``app.cli.add_command(hx_actions_cli)``).

.. code-block:: console

    $ flask hx-actions purge-keys
    Deleted 42 expired idempotency keys.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from . import idempotency

hx_actions_cli = AppGroup("hx-actions", help="flask-hx-actions maintenance commands.")


@hx_actions_cli.command("purge-keys")
def purge_keys() -> None:
    """Delete expired idempotency keys (run it from cron, for example hourly).

    Redis expires its keys itself, so with the Redis store there is nothing to delete.
    """
    store = idempotency.store_for(current_app._get_current_object())  # type: ignore[attr-defined]
    if store is None:
        raise click.ClickException(
            "No idempotency store is configured (HX_ACTIONS_IDEMPOTENCY_STORE)."
        )
    count = store.purge_expired()
    click.echo(f"Deleted {count} expired idempotency key{'' if count == 1 else 's'}.")


__all__ = ["hx_actions_cli", "purge_keys"]
