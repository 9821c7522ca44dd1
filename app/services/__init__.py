"""Read services: what the API and the pages show, assembled from app/db, app/domain and
app/simulation, as typed records; failures are app/services/errors.py's domain errors.

`hosts` (fleet rows, host detail, series, caches, cgroups, removals, the model's history and
state of a host), `pins` (what holds a host's dying memcgs), `model` (workloads, simulation
results, projections and refcounts of a host).
"""
