"""Graph validation (SPEC 3): one pure function over plain data, no database.

`validate_graph` returns every problem at once, errors (which block activation) and warnings
(which do not), each naming its node, so the API, the admin and the editor show the same list.
"""

import re
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlparse

from workflows.statuses import Branch, NodeType

SINGLE_OUTPUT_TYPES = (NodeType.ENTRY, NodeType.TIME, NodeType.APPLICATION)
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class NodeSpec:
    key: str
    type: str
    name: str = ""
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EdgeSpec:
    source: str
    target: str
    branch: str | None = None


@dataclass(frozen=True)
class Problem:
    node: str | None
    message: str

    def as_dict(self) -> dict:
        return {"node": self.node, "message": self.message}


@dataclass
class GraphReport:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return not self.errors


def _is_positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def config_errors(node_type: str, config: object) -> list[str]:
    """What is wrong with a node's config for its type (SPEC 7), as sentences."""
    if not isinstance(config, dict):
        return ["config must be an object"]
    allowed: set[str]
    problems: list[str] = []
    if node_type == NodeType.TIME:
        allowed = {"delay_seconds", "at_local_time"}
        has_delay, has_time = "delay_seconds" in config, "at_local_time" in config
        if has_delay == has_time:
            problems.append("a time node needs exactly one of delay_seconds or at_local_time")
        if has_delay and not (
            isinstance(config["delay_seconds"], int)
            and not isinstance(config["delay_seconds"], bool)
            and config["delay_seconds"] > 0
        ):
            problems.append("delay_seconds must be a whole number of seconds above 0")
        if has_time and not (
            isinstance(config["at_local_time"], str) and _HHMM.fullmatch(config["at_local_time"])
        ):
            problems.append('at_local_time must be a time of day like "09:00"')
    elif node_type == NodeType.APPLICATION:
        allowed = {"url", "timeout_seconds"}
        url = config.get("url")
        parsed = urlparse(url) if isinstance(url, str) else None
        if not parsed or parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append("an application node needs an http(s) url")
        if "timeout_seconds" in config and not (
            _is_positive_number(config["timeout_seconds"]) and config["timeout_seconds"] <= 120
        ):
            problems.append("timeout_seconds must be a number above 0 and at most 120")
    elif node_type == NodeType.VOICE_CALL:
        allowed = {"agent", "script"}
        for name in ("agent", "script"):
            if name in config and not isinstance(config[name], str):
                problems.append(f"{name} must be text")
    elif node_type in NodeType.values:
        allowed = set()
    else:
        return [f"unknown node type {node_type!r}"]
    unknown = sorted(set(config) - allowed)
    if unknown:
        problems.append(f"unknown config field(s) for a {node_type} node: {', '.join(unknown)}")
    return problems


def _reachable(start: Iterable[str], neighbours: dict[str, list[str]]) -> set[str]:
    seen = set(start)
    queue = deque(seen)
    while queue:
        for nxt in neighbours.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _cycles_without_wait(keys: list[str], forward: dict[str, list[str]], waits: set[str]):
    """Strongly connected components (Tarjan) of the graph minus the waiting time nodes.

    Any component with a loop in it is a cycle a lead could go round without ever waiting.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strongconnect(root: str) -> None:
        nonlocal counter
        # Iterative to survive graphs deeper than Python's recursion limit.
        work = [(root, iter(forward.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child in waits:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(forward.get(child, ()))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in forward.get(node, ()):
                    found.append(sorted(component, key=keys.index))

    for key in keys:
        if key not in waits and key not in index:
            strongconnect(key)
    return found


def validate_graph(
    nodes: list[NodeSpec], edges: list[EdgeSpec], *, has_leads: bool = True
) -> GraphReport:
    report = GraphReport()

    def error(node: str | None, message: str) -> None:
        report.errors.append(Problem(node, message))

    by_key: dict[str, NodeSpec] = {}
    for node in nodes:
        if node.key in by_key:
            error(node.key, f"Node key '{node.key}' is used by more than one node.")
        by_key[node.key] = node
    keys = list(by_key)

    def label(key: str) -> str:
        node = by_key.get(key)
        return f"'{node.name or key}'" if node else f"'{key}'"

    for node in nodes:
        if node.type not in NodeType.values:
            error(node.key, f"{label(node.key)} has an unknown type '{node.type}'.")
            continue
        for message in config_errors(node.type, node.config):
            error(node.key, f"{label(node.key)}: invalid config: {message}.")

    entries = [n.key for n in nodes if n.type == NodeType.ENTRY]
    if not entries:
        error(None, "The workflow has no entry node: add one entry node where leads start.")
    for extra in entries[1:]:
        error(extra, f"{label(extra)} is a second entry node: a workflow has exactly one.")

    forward: dict[str, list[str]] = defaultdict(list)
    outputs: dict[str, list[EdgeSpec]] = defaultdict(list)
    for edge in edges:
        missing = [k for k in (edge.source, edge.target) if k not in by_key]
        if missing:
            error(
                edge.source if edge.source in by_key else None,
                f"An edge {edge.source} -> {edge.target} names an unknown node '{missing[0]}'.",
            )
            continue
        forward[edge.source].append(edge.target)
        outputs[edge.source].append(edge)
        if by_key[edge.target].type == NodeType.ENTRY:
            error(
                edge.target,
                f"{label(edge.source)} connects into the entry node "
                f"{label(edge.target)}: nothing may lead back to the entry.",
            )

    for node in nodes:
        outs = outputs.get(node.key, [])
        if node.type in (NodeType.CONVERTED, NodeType.DROPPED):
            if outs:
                error(
                    node.key,
                    f"{label(node.key)} is a terminal node but has "
                    f"{len(outs)} output(s): terminals end the workflow.",
                )
        elif node.type == NodeType.ENTRY:
            if len(outs) != 1:
                error(
                    node.key,
                    f"The entry node {label(node.key)} needs exactly one output "
                    f"(it has {len(outs)}).",
                )
            elif outs[0].branch:
                error(node.key, f"{label(node.key)}'s output must not carry a branch label.")
        elif node.type in SINGLE_OUTPUT_TYPES:
            if len(outs) != 1:
                error(
                    node.key,
                    f"{label(node.key)} ({node.type}) needs exactly one output "
                    f"(it has {len(outs)}).",
                )
            elif outs[0].branch:
                error(
                    node.key,
                    f"{label(node.key)}'s output must not carry a branch label "
                    f"(only Voice Call outputs are labelled).",
                )
        elif node.type == NodeType.VOICE_CALL:
            seen_labels: list[str] = []
            for out in outs:
                if out.branch not in Branch.values:
                    error(
                        node.key,
                        f"{label(node.key)} has an output to {label(out.target)} "
                        "without a COMPLETED, DNP or FAILED label.",
                    )
                elif out.branch in seen_labels:
                    error(node.key, f"{label(node.key)} has more than one {out.branch} output.")
                else:
                    seen_labels.append(out.branch)
            for branch in Branch:
                if branch not in seen_labels:
                    report.warnings.append(
                        Problem(
                            node.key,
                            f"{label(node.key)} has no {branch} output: leads whose call ends "
                            f"{branch} will stay at {label(node.key)}.",
                        )
                    )

    if entries:
        reachable = _reachable(entries[:1], forward)
        for key in keys:
            if key not in reachable:
                error(key, f"{label(key)} cannot be reached from the entry node.")

    backward: dict[str, list[str]] = defaultdict(list)
    for source, targets in forward.items():
        for target in targets:
            backward[target].append(source)
    terminals = [n.key for n in nodes if n.type in (NodeType.CONVERTED, NodeType.DROPPED)]
    can_finish = _reachable(terminals, backward)
    for key in keys:
        if key not in can_finish:
            error(
                key,
                f"No terminal node can be reached from {label(key)}: "
                "leads there could never finish.",
            )

    waits = {
        n.key for n in nodes if n.type == NodeType.TIME and not config_errors(n.type, n.config)
    }
    for cycle in _cycles_without_wait(keys, forward, waits):
        path = " -> ".join(cycle)
        error(
            cycle[0],
            f"The cycle {path} has no time node with a positive wait: "
            "a lead could loop through it without pause.",
        )

    if not has_leads:
        report.warnings.append(Problem(None, "The workflow has no leads yet."))
    return report
