"""Route modules of /api/v1."""
