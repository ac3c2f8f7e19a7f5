"""The flask-hx-actions demo: todos with attachments, per-user, on SQLite by default.

Run it with ``scripts/run-demo`` (``flask --app demo.app run --debug``); Flask's CLI finds the
``create_app`` factory in :mod:`demo.app`.
"""
