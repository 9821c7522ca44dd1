"""The era registry as the model reads it: a re-export of app/domain/eras.py.

There is one registry (app.domain.eras.ERAS); `EraModel` is its record under the name the
engine, the selftests and the refcount view have always used.
"""

from __future__ import annotations

from app.domain.eras import ERAS, ORDER, Shutdown, SlabPin
from app.domain.eras import Era as EraModel

__all__ = ["ERAS", "ORDER", "EraModel", "Shutdown", "SlabPin"]
