"""The Flask app of a hand-wired variant of the baseline (``checked_app``, ``floor_app``): the
vendored htmx as its static folder, and its own templates (the row, which carries the checks'
hidden inputs) looked up before the baseline's, whose page, stats and htmx answer include them."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from jinja2 import ChoiceLoader, FileSystemLoader

# htmx itself is served from the repository's vendored copy (a plain static file).
STATIC = Path(__file__).resolve().parents[2] / "static"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def app_over_baseline(import_name: str, templates: str) -> Flask:
    app = Flask(import_name, static_folder=str(STATIC))
    app.jinja_loader = ChoiceLoader(
        [FileSystemLoader(TEMPLATES / templates), FileSystemLoader(TEMPLATES / "baseline")]
    )
    return app
