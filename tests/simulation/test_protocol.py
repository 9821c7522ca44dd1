"""The protocol view: the variants' call sequences run through the RCU checker.

The checker is told nothing about variants: v4's bug must be found from its calls, and any
mutation of v5's calls that unbalances a read-side section must be found too.
"""

from __future__ import annotations

import pytest

from app.simulation.protocol import (
    ILLEGAL_SWITCH,
    SEQUENCES,
    SLEEPING,
    Call,
    ProtocolRun,
    RcuChecker,
    run,
)


def _fns(variant: str, seq: str) -> list[str]:
    return [c.fn for c in SEQUENCES[variant][seq]]  # type: ignore[index]


def test_sequences_are_the_code_as_written() -> None:
    v4, v5 = SEQUENCES["v4"]["alloc"], SEQUENCES["v5"]["alloc"]
    # Only out_unlock differs between v4 as posted and v5 (the v5 changelog's one-line fix).
    diff = [(a.code, b.code) for a, b in zip(v4, v5, strict=True) if a != b]
    assert diff == [("out_unlock: rcu_read_lock();", "out_unlock: rcu_read_unlock();")]
    assert SEQUENCES["5.3"]["alloc"] == v5
    # v4/v5 release: call_rcu then work; 5.3 queues the work directly (kernel-notes 2(c)).
    assert "call_rcu" in _fns("v4", "release") and "call_rcu" not in _fns("5.3", "release")
    assert "reparent" in _fns("5.3", "offline") and "reparent" not in _fns("v5", "offline")


def test_the_checker_finds_v4s_bug_and_the_memcg_is_never_released() -> None:
    r = run("v4")
    assert not r.css_put and not r.memcg_released and r.final_state == "deactivating"
    sleeping = [v for v in r.violations if SLEEPING in v]
    switches = [v for v in r.violations if ILLEGAL_SWITCH in v]
    # The 3rd and 4th allocations start on CPUs left inside read-side sections.
    assert [v.split(" ms")[0] for v in sleeping] == ["12.0", "30.0"]
    assert len(switches) == 4  # every allocation's task switches out with a section open
    assert all("'out_unlock: rcu_read_lock();'" in v for v in sleeping + switches)
    stuck = [v for v in r.violations if v.startswith("grace period never ended")]
    assert len(stuck) == 1 and "deactivate never ran" in stuck[0]
    # Two sections per call (the lock at the top and the one at out_unlock), never closed:
    # "systemd/1 held rcu_read_lock twice, both taken in memcg_kmem_get_cache".
    assert r.steps[-1].rcu_nesting == (4, 4)
    # Every page drained, but the initial ref stays: percpu_ref_kill never ran.
    last = r.steps[-1]
    assert last.grace_periods_done == 0 and last.refcount == 1 and last.percpu_mode
    assert r.summary.startswith("The memcg is never released")


@pytest.mark.parametrize("variant", ["v5", "5.3"])
def test_v5_and_53_are_clean_and_release_the_memcg(variant: str) -> None:
    r = run(variant)  # type: ignore[arg-type]
    assert r.violations == [] and r.css_put and r.memcg_released
    states = [s.state for s in r.steps]
    for a, b in (("deactivating", "killed"), ("killed", "draining"),
                 ("draining", "zero"), ("zero", "shutdown queued"),
                 ("shutdown queued", "shut down"), ("shut down", "css put")):
        assert states.index(a) < states.index(b), (a, b)
    assert r.steps[-1].rcu_nesting == (0, 0) and r.steps[-1].refcount == 0
    assert [s.t_ms for s in r.steps] == sorted(s.t_ms for s in r.steps)
    assert r.summary.startswith("The memcg is released")
    assert r.steps[-1].event == ("css_put(parent)" if variant == "5.3" else "css_put(memcg)")


def test_v5_shutdown_waits_a_grace_period_but_53_does_not() -> None:
    def zero_to_shutdown(r: ProtocolRun) -> float:
        z = next(s.t_ms for s in r.steps if s.state == "zero")
        d = next(s.t_ms for s in r.steps if s.state == "shut down")
        return d - z
    v5, v53 = run("v5"), run("5.3")
    assert v5.steps[-1].grace_periods_done == v53.steps[-1].grace_periods_done + 1
    assert zero_to_shutdown(v5) > zero_to_shutdown(v53)


def _mutated(drop: str | None = None, add: tuple[int, Call] | None = None
             ) -> dict[str, tuple[Call, ...]]:
    seqs = dict(SEQUENCES["v5"])
    calls = list(seqs["alloc"])
    if drop is not None:
        calls = [c for c in calls if c.fn != drop]
    if add is not None:
        calls.insert(*add)
    seqs["alloc"] = tuple(calls)
    return seqs


def test_dropping_v5s_unlock_is_caught() -> None:
    r = run("v5", sequences=_mutated(drop="rcu_read_unlock"))
    assert any(SLEEPING in v and "memcg_kmem_get_cache: rcu_read_lock();" in v
               for v in r.violations)
    assert any(v.startswith("grace period never ended") for v in r.violations)
    assert not r.memcg_released and r.summary.startswith("The memcg is never released")


def test_an_extra_unlock_and_sleeping_under_a_spinlock_are_caught() -> None:
    extra = Call("rcu_read_unlock", "a second rcu_read_unlock();")
    r = run("v5", sequences=_mutated(add=(5, extra)))
    assert any("without rcu_read_lock()" in v for v in r.violations)
    seqs = dict(SEQUENCES["v5"])
    seqs["release"] = (seqs["release"][0], Call("might_sleep", "kmalloc(GFP_KERNEL)"),
                       *seqs["release"][1:])
    r = run("v5", sequences=seqs)
    assert [v.split(": ", 1)[1] for v in r.violations] == [f"{SLEEPING}: under a spinlock"]


def test_grace_periods_wait_for_every_cpu() -> None:
    rcu = RcuChecker(3)
    rcu.call_rcu("cb")
    assert rcu.tick(0) == [] and rcu.tick(1) == []
    rcu.lock(2, "rcu_read_lock();")
    assert rcu.tick(2) == []  # inside a section: no quiescent state
    assert rcu.context_switch(2)[0] is not None
    assert rcu.unlock(2) is None and rcu.tick(2) == ["cb"] and rcu.done == 1
    assert rcu.unlock(2) is not None  # nothing left to unlock


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="variant must be one of"):
        run("v6")  # type: ignore[arg-type]
