"""The workbench over HTTP: the page and its JSON API (app.py)."""
