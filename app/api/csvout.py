"""CSV for every table endpoint (?format=csv): one row per item, nested values as JSON."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi.responses import Response

# What a spreadsheet may read as the start of a formula (OWASP's list, with DDE's "|").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "|")


def content_disposition(filename: str) -> str:
    """An attachment header for any name: an ASCII fallback and RFC 5987 filename*."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;%/' else "_"
                       for c in filename)
    return (f'attachment; filename="{fallback}"; '
            f"filename*=UTF-8''{quote(filename, safe='')}")


def _cell(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)
    if isinstance(v, str) and v[:1] in FORMULA_STARTS:
        return "'" + v  # no formula injection when opened in a spreadsheet
    return v


def csv_response(items: Sequence[Any], filename: str,
                 columns: Sequence[str] | None = None) -> Response:
    """Items (dataclasses or dicts) as text/csv with a header row."""
    rows = [dataclasses.asdict(i) if dataclasses.is_dataclass(i) and not isinstance(i, type)
            else dict(i) for i in items]
    cols = list(columns) if columns else (list(rows[0]) if rows else [])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": content_disposition(f"{filename}.csv")})
