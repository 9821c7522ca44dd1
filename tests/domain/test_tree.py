"""Cgroup trees from stored paths: any depth, any path, never a RecursionError."""

from __future__ import annotations

from app.domain import tree


def test_a_tree_5000_levels_deep_builds_and_counts() -> None:
    deep = "".join(f"/l{i}" for i in range(5000))
    root = tree.build([(deep, {"leaf": True}), ("/other", {})])
    assert root.descendants == 5001
    nodes = tree.flatten(root)
    assert len(nodes) == 5002 and nodes[-1].path == "/other"
    leaf = next(n for n in nodes if n.path == deep)
    assert leaf.depth == 5000 and leaf.data == {"leaf": True} and leaf.descendants == 0
    assert nodes[1].path == "/l0" and nodes[1].descendants == 4999


def test_paths_without_a_root_or_empty_are_normalised() -> None:
    root = tree.build([("", {"n": 0}), ("job", {"n": 1}), ("job//a/", {"n": 2}),
                       ("/job/b", {"n": 3})])
    got = [(n.path, n.name, n.depth, n.descendants, n.data) for n in tree.flatten(root)]
    assert got == [("/", "/", 0, 3, {"n": 0}), ("/job", "job", 1, 2, {"n": 1}),
                   ("/job/a", "a", 2, 0, {"n": 2}), ("/job/b", "b", 2, 0, {"n": 3})]
    assert tree.parent_of("") is None and tree.normalise("a//b/") == "/a/b"
