"""The protocol view: v4 as posted breaks RCU; v5 and 5.3 run the cache to its css_put."""

from __future__ import annotations

from app.simulation.protocol import run


def test_v4_as_posted_stalls_rcu_and_sleeps_in_a_read_side_section() -> None:
    r = run("v4")
    assert r.final_state == "deactivating" and not r.css_put
    sleeping = [v for v in r.violations if "sleeping function called from invalid context" in v]
    assert len(sleeping) == 4  # every allocation after the first left a section open
    assert any("grace period never ended" in v and "deactivate never ran" in v
               for v in r.violations)
    assert max(max(s.rcu_nesting) for s in r.steps) >= 4  # sections only nest deeper
    assert r.steps[-1].refcount > 0


def test_v5_and_53_are_clean() -> None:
    for variant in ("v5", "5.3"):
        r = run(variant)
        assert r.violations == [], variant
        assert r.css_put and r.final_state == "css put"
        states = [s.state for s in r.steps]
        for a, b in (("deactivating", "killed"), ("killed", "draining"),
                     ("draining", "zero"), ("zero", "shutdown queued")):
            assert states.index(a) < states.index(b), (variant, a, b)
        assert all(n == 0 for n in r.steps[-1].rcu_nesting)
        assert min(s.refcount for s in r.steps) == 0
    assert "parent" in run("5.3").steps[-1].event and "memcg" in run("v5").steps[-1].event


def test_v5_shutdown_waits_a_grace_period_but_53_does_not() -> None:
    v5, v53 = run("v5"), run("5.3")
    def zero_to_shutdown(r):  # type: ignore[no-untyped-def]
        z = next(s.t_ms for s in r.steps if s.state == "zero")
        d = next(s.t_ms for s in r.steps if s.event.startswith("shutdown_cache"))
        return d - z
    assert zero_to_shutdown(v5) > zero_to_shutdown(v53)
