"""The glossary page, and the hover and link every era chip and jargon term carries."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.config import Settings
from app.domain.eras import ERAS
from app.main import create_app
from app.web.glossary import TERMS


def test_glossary_lists_every_term_and_era(seeded_url: str) -> None:
    with TestClient(create_app(Settings(database_url=seeded_url))) as c:
        d = c.get("/glossary?format=json").json()["terms"]
        names = [t["name"] for t in d]
        assert names == [t.name for t in TERMS] + list(ERAS)
        assert all(t["text"] for t in d)
        era = next(t for t in d if t["name"] == "objcg-kmem")
        assert era["key"] == "era-objcg-kmem" and ERAS["objcg-kmem"].summary in era["text"]
        html = c.get("/glossary").text
        assert 'id="era-v4-5-7"' in html and 'id="zombie"' in html
        # Every era chip on the host page links to its entry with the era's line on hover.
        host = c.get("/hosts/host-0").text
        chip = re.search(r'<a class="era" href="/glossary#era-objcg-kmem" title="([^"]+)">'
                         r'objcg-kmem</a>', host)
        assert chip is not None and ERAS["objcg-kmem"].kernels in chip.group(1)
        assert '<a class="term" href="/glossary#dying" title="A memory cgroup that was ' \
               'removed' in host
        assert 'href="/glossary">Glossary</a>' in host
        proj = c.get("/hosts/host-0/projection?days=7").text
        assert 'href="/glossary#zombie"' in proj and proj.count('class="era"') >= 7
