"""One module per kernel file family; each reads under an injected root and returns records."""
