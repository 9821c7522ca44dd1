"""Thin HTML routes, the one Jinja2 environment, and pure plotly figure builders."""
