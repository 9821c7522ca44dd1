"""Cgroup trees from flat paths: parents, children, and subtree sums.

Iterative throughout: a stored tree may be thousands of levels deep, and stored paths may lack
the leading "/" or be empty (they are normalised, never a crash).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Node:
    """One cgroup in a tree; `descendants` counts visible cgroups below it."""

    path: str
    name: str
    depth: int
    data: dict[str, object] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)
    descendants: int = 0


def normalise(path: str) -> str:
    """A path with one leading "/" and no empty segments ("" and "a//b/" -> "/", "/a/b")."""
    return "/" + "/".join(p for p in path.split("/") if p)


def parent_of(path: str) -> str | None:
    """The parent path of a cgroup path ("/" has none)."""
    if path in ("/", ""):
        return None
    head = path.rsplit("/", 1)[0]
    return head or "/"


def build(paths_data: list[tuple[str, dict[str, object]]]) -> Node:
    """Arrange (path, data) pairs into a tree under "/" (missing parents are made empty)."""
    nodes: dict[str, Node] = {"/": Node("/", "/", 0)}
    for path, data in sorted(paths_data, key=lambda x: x[0]):
        _ensure(nodes, normalise(path)).data = data
    _count(nodes)
    return nodes["/"]


def _ensure(nodes: dict[str, Node], path: str) -> Node:
    missing: list[str] = []
    at = path
    while at not in nodes:
        missing.append(at)
        at = parent_of(at) or "/"
    parent = nodes[at]
    for p in reversed(missing):  # top down, so each parent exists before its child
        node = Node(p, p.rsplit("/", 1)[1], parent.depth + 1)
        parent.children.append(node)
        nodes[p] = node
        parent = node
    return nodes[path]


def _count(nodes: dict[str, Node]) -> None:
    # Deepest first: a node's count is final before it is added to its parent's.
    for node in sorted(nodes.values(), key=lambda n: n.depth, reverse=True):
        up = parent_of(node.path)
        if up is not None:
            nodes[up].descendants += 1 + node.descendants


def flatten(root: Node) -> list[Node]:
    """Depth-first, children in name order: the order a tree view shows them."""
    out: list[Node] = []
    stack = [root]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(sorted(n.children, key=lambda c: c.name, reverse=True))
    return out
