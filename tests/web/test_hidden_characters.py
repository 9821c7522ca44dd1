"""Characters that reorder or hide text are shown as code points on every page (the
templates' finalize), HTML-escaped like the rest; markup the app builds is untouched."""

from __future__ import annotations

from markupsafe import Markup

from app.web.templating import templates


def test_bidi_overrides_and_zero_width_characters_are_shown() -> None:
    t = templates.env.from_string("<td>{{ release }}</td><td>{{ built }}</td>")
    html = t.render(release="6.18\u202e<b>1.5-evil\u200b", built=Markup("<i>ok</i>"))
    assert html == ("<td>6.18&lt;U+202E&gt;&lt;b&gt;1.5-evil&lt;U+200B&gt;</td>"
                    "<td><i>ok</i></td>")
    for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\ufeff":
        assert c not in t.render(release=f"a{c}b", built="")
