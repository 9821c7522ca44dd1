"""Cgroup trees from flat paths: parents, children, and subtree sums."""

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


def parent_of(path: str) -> str | None:
    """The parent path of a cgroup path ("/" has none)."""
    if path == "/":
        return None
    head = path.rsplit("/", 1)[0]
    return head or "/"


def build(paths_data: list[tuple[str, dict[str, object]]]) -> Node:
    """Arrange (path, data) pairs into a tree under "/" (missing parents are made empty)."""
    nodes: dict[str, Node] = {"/": Node("/", "/", 0)}
    for path, data in sorted(paths_data, key=lambda x: x[0]):
        node = _ensure(nodes, path)
        node.data = data
    root = nodes["/"]
    _count(root)
    return root


def _ensure(nodes: dict[str, Node], path: str) -> Node:
    if path in nodes:
        return nodes[path]
    parent = _ensure(nodes, parent_of(path) or "/")
    node = Node(path, path.rsplit("/", 1)[1], parent.depth + 1)
    parent.children.append(node)
    nodes[path] = node
    return node


def _count(node: Node) -> int:
    node.descendants = sum(1 + _count(c) for c in node.children)
    return node.descendants


def flatten(root: Node) -> list[Node]:
    """Depth-first, children in name order: the order a tree view shows them."""
    out: list[Node] = []
    stack = [root]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(sorted(n.children, key=lambda c: c.name, reverse=True))
    return out
