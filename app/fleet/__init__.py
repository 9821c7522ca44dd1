"""The fleet: what collectors push and how a push is authenticated (no API route here).

`wire` defines the push body (`PushBody`, snapshot schemas /2 and /1) once, as strict pydantic
models; ingest validates with it, the collector's JSON output matches it (tests prove it), and
/docs and `slabscope schema` show it. `tokens` makes and hashes push tokens.
"""
