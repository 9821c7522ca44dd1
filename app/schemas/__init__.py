"""Pydantic shapes of the JSON API."""
