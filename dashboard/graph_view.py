"""A layered left-to-right layout of a workflow graph (SPEC 3), for a server-rendered SVG.

`layout(nodes, edges)` is a pure function over plain NodeSpec/EdgeSpec data: no database, no
JavaScript. The steps are the classic layered (Sugiyama) ones, kept small:

1. Back edges: a depth-first search from the entry node; an edge into a node still on the
   search stack closes a cycle and is a back edge (a self-loop is one too).
2. Layers: the longest-path distance from the entry over the other edges. Nodes the entry
   cannot reach go in one extra layer after the last. A graph without an entry node (a draft)
   is laid out from its source nodes (no incoming edge) instead, or from its first node.
3. Order within a layer: edges spanning several layers get a dummy vertex in each layer they
   cross, so they are routed around the nodes; then barycenter sweeps down and up, keeping the
   ordering with the fewest crossings.
4. Coordinates: fixed-size boxes in columns; each vertex is pulled towards the mean height of
   its neighbours, keeping the order and the minimum gaps (an isotonic regression per layer).
5. Edges: a cubic curve from a port on the right side of the source to a port on the left side
   of the target (through the dummies of a long edge). Edges that cannot run left to right
   (back edges, self-loops, edges out of the unreachable layer) leave the source to the right,
   run in their own lane below the nodes they pass, and enter the target from the left.

Every step iterates over lists in input order, so equal input gives byte-equal output.
"""

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field

from workflows.graph import EdgeSpec, NodeSpec
from workflows.statuses import NodeType

NODE_WIDTH = 180
NODE_HEIGHT = 84
LAYER_GAP = 120  # horizontal space between two columns of nodes (edges and labels run here)
NODE_GAP = 36  # vertical space between two nodes of a layer
DUMMY_GAP = 18  # vertical space next to an edge passing through a layer
MARGIN = 40  # around the drawing; at least HOOK so a curve never leaves the view box
HOOK = 32  # how far an around-routed edge reaches out of its source and into its target
LANE_GAP = 28  # from the lowest box an around-routed edge passes to its lane
LANE_SPACING = 22  # between two lanes that share some columns
LABEL_T = 0.3  # where on its first curve a forward edge's label sits (near the source)
LABEL_HALF_WIDTH = 40  # room kept for a label either side of its anchor
EMPTY_WIDTH = 2 * MARGIN + NODE_WIDTH
EMPTY_HEIGHT = 2 * MARGIN + NODE_HEIGHT
_SWEEPS = 6


@dataclass(frozen=True)
class PlacedNode:
    key: str
    name: str
    type: str
    x: int  # top left corner, in view box units
    y: int
    w: int
    h: int

    @property
    def type_label(self) -> str:
        """The type's human name ("Voice Call"), or the raw type if it is unknown."""
        return NodeType(self.type).label if self.type in NodeType.values else self.type

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


@dataclass(frozen=True)
class PlacedEdge:
    source: str
    target: str
    branch: str | None
    path: str  # SVG path data, ending on the left side of the target
    label_x: float
    label_y: float
    is_back_edge: bool


@dataclass(frozen=True)
class GraphLayout:
    width: int  # the view box is 0 0 width height
    height: int
    nodes: list[PlacedNode] = field(default_factory=list)
    edges: list[PlacedEdge] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.nodes


@dataclass
class _Vertex:
    """A box in a layer: a node, or a dummy holding the place of a long edge."""

    id: int
    layer: int
    h: float
    key: str | None = None  # None for a dummy
    y: float = 0.0  # centre
    preds: list[int] = field(default_factory=list)  # in the previous layer
    succs: list[int] = field(default_factory=list)  # in the next layer

    @property
    def is_dummy(self) -> bool:
        return self.key is None


def _num(value: float) -> str:
    """A coordinate for path data: at most one decimal, no trailing zeros."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _round(value: float) -> float:
    # Half up, never half to even, so rounding keeps integer gaps between sorted values.
    return float(math.floor(value + 0.5))


def _classify_back_edges(
    keys: list[str], edges: list[EdgeSpec], roots: list[str]
) -> tuple[set[int], set[str]]:
    """Indices of the edges closing a cycle, and the keys reachable from the roots.

    Iterative DFS from each root, then from every node not yet seen (so cycles among
    unreachable nodes get a back edge too); children in edge order.
    """
    out: dict[str, list[int]] = defaultdict(list)
    for i, edge in enumerate(edges):
        out[edge.source].append(i)
    state: dict[str, int] = {}  # 1 on the stack, 2 finished
    back: set[int] = set()
    reachable: set[str] = set()

    def search(root: str) -> None:
        state[root] = 1
        stack = [(root, iter(out.get(root, ())))]
        while stack:
            node, children = stack[-1]
            for i in children:
                target = edges[i].target
                seen = state.get(target)
                if seen == 1:
                    back.add(i)
                elif seen is None:
                    state[target] = 1
                    stack.append((target, iter(out.get(target, ()))))
                    break
            else:
                state[node] = 2
                stack.pop()

    for root in roots:
        if root not in state:
            search(root)
    reachable.update(state)
    for key in keys:
        if key not in state:
            search(key)
    return back, reachable


def _roots(nodes: list[NodeSpec], edges: list[EdgeSpec]) -> list[str]:
    entries = [n.key for n in nodes if n.type == NodeType.ENTRY]
    if entries:
        return entries[:1]
    targets = {e.target for e in edges if e.source != e.target}
    sources = [n.key for n in nodes if n.key not in targets]
    return sources or [nodes[0].key]


def _longest_path_layers(
    keys: list[str], edges: list[EdgeSpec], forward: list[int], reachable: set[str]
) -> dict[str, int]:
    """Layer of each reachable key: the longest distance from a root over the forward edges
    (which form a DAG: a DFS forest's back edges are gone)."""
    indegree = dict.fromkeys((k for k in keys if k in reachable), 0)
    out: dict[str, list[str]] = defaultdict(list)
    for i in forward:
        edge = edges[i]
        out[edge.source].append(edge.target)
        indegree[edge.target] += 1
    layer = dict.fromkeys(indegree, 0)
    ready = [k for k, d in indegree.items() if d == 0]
    while ready:
        key = ready.pop(0)
        for target in out.get(key, ()):
            layer[target] = max(layer[target], layer[key] + 1)
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    return layer


def _crossings(layers: list[list[int]], vertices: list[_Vertex], pos: dict[int, int]) -> int:
    total = 0
    for layer in layers[:-1]:
        pairs = sorted((pos[u], pos[v]) for u in layer for v in vertices[u].succs)
        for i, (_, b1) in enumerate(pairs):
            for a2, b2 in pairs[i + 1 :]:
                if b2 < b1 and a2 != pairs[i][0]:
                    total += 1
    return total


def _order(layers: list[list[int]], vertices: list[_Vertex]) -> list[list[int]]:
    """Barycenter sweeps; the ordering with the fewest crossings wins (the first on a tie)."""

    def positions(current: list[list[int]]) -> dict[int, int]:
        return {v: i for layer in current for i, v in enumerate(layer)}

    def sweep(current: list[list[int]], downward: bool) -> list[list[int]]:
        current = [list(layer) for layer in current]
        pos = positions(current)
        indices = range(1, len(current)) if downward else range(len(current) - 2, -1, -1)
        for li in indices:

            def barycenter(v: int) -> tuple[float, int]:
                vertex = vertices[v]
                near = vertex.preds if downward else vertex.succs
                if not near:
                    return (float(pos[v]), pos[v])
                return (sum(pos[n] for n in near) / len(near), pos[v])

            current[li].sort(key=barycenter)
            pos.update({v: i for i, v in enumerate(current[li])})
        return current

    best = sweep(layers, downward=True)
    best_crossings = _crossings(best, vertices, positions(best))
    current = best
    for round_ in range(_SWEEPS):
        current = sweep(current, downward=round_ % 2 == 1)
        crossings = _crossings(current, vertices, positions(current))
        if crossings < best_crossings:
            best, best_crossings = current, crossings
    return best


def _isotonic(targets: list[float]) -> list[float]:
    """The non-decreasing sequence closest (least squares) to `targets`: pool adjacent
    violators."""
    blocks: list[list[float]] = []  # [sum, count]
    for t in targets:
        blocks.append([t, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    result: list[float] = []
    for total, count in blocks:
        result.extend([total / count] * int(count))
    return result


def _separation(a: _Vertex, b: _Vertex) -> float:
    gap = NODE_GAP if not (a.is_dummy or b.is_dummy) else DUMMY_GAP
    return a.h / 2 + b.h / 2 + gap


def _place_layer(layer: list[int], vertices: list[_Vertex], desired: list[float]) -> None:
    """Centres as near `desired` as the order and the minimum gaps allow."""
    offsets = [0.0]
    for a, b in itertools.pairwise(layer):
        offsets.append(offsets[-1] + _separation(vertices[a], vertices[b]))
    fitted = _isotonic([d - o for d, o in zip(desired, offsets, strict=True)])
    for v, z, o in zip(layer, fitted, offsets, strict=True):
        vertices[v].y = z + o


def _assign_y(layers: list[list[int]], vertices: list[_Vertex]) -> None:
    for layer in layers:
        _place_layer(layer, vertices, [0.0] * len(layer))

    def relax(layer: list[int], use_preds: bool, use_succs: bool) -> None:
        desired = []
        for v in layer:
            vertex = vertices[v]
            near = (vertex.preds if use_preds else []) + (vertex.succs if use_succs else [])
            desired.append(sum(vertices[n].y for n in near) / len(near) if near else vertex.y)
        _place_layer(layer, vertices, desired)

    for round_ in range(_SWEEPS):
        if round_ % 2 == 0:
            for layer in layers[1:]:
                relax(layer, True, False)
        else:
            for layer in reversed(layers[:-1]):
                relax(layer, False, True)
    for layer in layers:
        relax(layer, True, True)


def _cubic(x0: float, y0: float, x1: float, y1: float) -> str:
    """A horizontal-tangent S curve from (x0, y0) to (x1, y1), without the moveto."""
    mid = (x0 + x1) / 2
    return f"C {_num(mid)} {_num(y0)} {_num(mid)} {_num(y1)} {_num(x1)} {_num(y1)}"


def _cubic_point(x0: float, y0: float, x1: float, y1: float, t: float) -> tuple[float, float]:
    """The point at `t` on the curve `_cubic` draws."""
    s = 1 - t
    fx = 1.5 * s * s * t + 1.5 * s * t * t + t**3
    fy = 3 * s * t * t + t**3
    return x0 + (x1 - x0) * fx, y0 + (y1 - y0) * fy


def layout(nodes: list[NodeSpec], edges: list[EdgeSpec]) -> GraphLayout:
    """Place `nodes` in left-to-right layers and route `edges` between them.

    Nodes with a repeated key after the first, and edges naming an unknown node, are left out.
    """
    unique: dict[str, NodeSpec] = {}
    for node in nodes:
        unique.setdefault(node.key, node)
    nodes = list(unique.values())
    if not nodes:
        return GraphLayout(width=EMPTY_WIDTH, height=EMPTY_HEIGHT)
    edges = [e for e in edges if e.source in unique and e.target in unique]
    keys = list(unique)

    back, reachable = _classify_back_edges(keys, edges, _roots(nodes, edges))
    candidates = [i for i in range(len(edges)) if i not in back]
    layer_of = _longest_path_layers(
        keys, edges, [i for i in candidates if edges[i].source in reachable], reachable
    )
    extra = max(layer_of.values(), default=-1) + 1
    for key in keys:
        layer_of.setdefault(key, extra)
    # Left to right through dummies; everything else is routed around, below.
    forward = [i for i in candidates if layer_of[edges[i].target] > layer_of[edges[i].source]]
    forward_set = set(forward)
    around = [i for i in range(len(edges)) if i not in forward_set]

    # Vertices: the nodes (in input order), then one dummy per layer a long edge crosses.
    vertices: list[_Vertex] = []
    vertex_of: dict[str, int] = {}
    for key in keys:
        vertex_of[key] = len(vertices)
        vertices.append(_Vertex(id=len(vertices), layer=layer_of[key], h=NODE_HEIGHT, key=key))
    chains: dict[int, list[int]] = {}
    for i in forward:
        edge = edges[i]
        chain = [vertex_of[edge.source]]
        for li in range(layer_of[edge.source] + 1, layer_of[edge.target]):
            chain.append(len(vertices))
            vertices.append(_Vertex(id=len(vertices), layer=li, h=0))
        chain.append(vertex_of[edge.target])
        for a, b in itertools.pairwise(chain):
            vertices[a].succs.append(b)
            vertices[b].preds.append(a)
        chains[i] = chain

    layer_count = max(v.layer for v in vertices) + 1
    layers: list[list[int]] = [[] for _ in range(layer_count)]
    for vertex in vertices:
        layers[vertex.layer].append(vertex.id)
    layers = _order(layers, vertices)
    _assign_y(layers, vertices)

    # Normalise: integer tops, the highest box MARGIN below the top of the view box.
    top = min(v.y - v.h / 2 for v in vertices)
    for vertex in vertices:
        vertex.y = _round(vertex.y - top + MARGIN)

    def column_x(layer: int) -> float:
        return MARGIN + layer * (NODE_WIDTH + LAYER_GAP)

    placed = {
        key: PlacedNode(
            key=key,
            name=unique[key].name or key,
            type=str(unique[key].type),
            x=int(column_x(layer_of[key])),
            y=int(vertices[vertex_of[key]].y - NODE_HEIGHT / 2),
            w=NODE_WIDTH,
            h=NODE_HEIGHT,
        )
        for key in keys
    }
    bottom_of_layer = [
        max(vertices[v].y + vertices[v].h / 2 for v in layer) if layer else MARGIN
        for layer in layers
    ]

    # Lanes for the edges routed around: inner (shorter) ones first, each below every box of
    # the columns it spans and clear of the lanes already taken there.
    lanes: dict[int, float] = {}
    taken: list[tuple[int, int, float]] = []
    for i in sorted(
        around,
        key=lambda i: (layer_of[edges[i].source] - layer_of[edges[i].target], i),
    ):
        lo, hi = sorted((layer_of[edges[i].target], layer_of[edges[i].source]))
        lane = max(bottom_of_layer[lo : hi + 1]) + LANE_GAP
        clash = True
        while clash:
            clash = False
            for t_lo, t_hi, t_lane in taken:
                if t_lo <= hi and lo <= t_hi and abs(t_lane - lane) < LANE_SPACING:
                    lane = t_lane + LANE_SPACING
                    clash = True
        lanes[i] = lane
        taken.append((lo, hi, lane))

    # Ports: each node spreads its outgoing edges down its right side and its incoming edges
    # down its left side, in the order of the vertex at the other end (around-routed edges,
    # which come from below, last, the outer lanes above the inner ones so the loops nest), so
    # parallel edges never share a curve or a label.
    def first_hop(i: int) -> float:
        return vertices[chains[i][1]].y if i in chains else math.inf

    def last_hop(i: int) -> float:
        return vertices[chains[i][-2]].y if i in chains else math.inf

    out_port: dict[int, float] = {}
    in_port: dict[int, float] = {}
    outgoing: dict[str, list[int]] = defaultdict(list)
    incoming: dict[str, list[int]] = defaultdict(list)
    for i, edge in enumerate(edges):
        outgoing[edge.source].append(i)
        incoming[edge.target].append(i)
    for key in keys:
        node = placed[key]
        for group, hop, ports in (
            (outgoing[key], first_hop, out_port),
            (incoming[key], last_hop, in_port),
        ):
            group = sorted(group, key=lambda i, hop=hop: (hop(i), -lanes.get(i, 0.0), i))
            for n, i in enumerate(group):
                ports[i] = _round(node.y + node.h * (n + 1) / (len(group) + 1))

    placed_edges: list[PlacedEdge] = []
    extent_x = [node.x + node.w for node in placed.values()]
    extent_y = [node.y + node.h for node in placed.values()]
    for i, edge in enumerate(edges):
        x0 = placed[edge.source].x + NODE_WIDTH
        y0 = out_port[i]
        x1 = placed[edge.target].x
        y1 = in_port[i]
        if i in chains:
            parts = [f"M {_num(x0)} {_num(y0)}"]
            x, y = x0, y0
            label = None
            for dummy in chains[i][1:-1]:
                dx, dy = column_x(vertices[dummy].layer), vertices[dummy].y
                parts.append(_cubic(x, y, dx, dy))
                label = label or _cubic_point(x, y, dx, dy, LABEL_T)
                parts.append(f"L {_num(dx + NODE_WIDTH)} {_num(dy)}")
                x, y = dx + NODE_WIDTH, dy
            parts.append(_cubic(x, y, x1, y1))
            label = label or _cubic_point(x, y, x1, y1, LABEL_T)
            label_x, label_y = label
        else:
            lane = lanes[i]
            parts = [
                f"M {_num(x0)} {_num(y0)}",
                f"C {_num(x0 + HOOK)} {_num(y0)} {_num(x0 + HOOK)} {_num(lane)}"
                f" {_num(x0)} {_num(lane)}",
                f"L {_num(x1)} {_num(lane)}",
                f"C {_num(x1 - HOOK)} {_num(lane)} {_num(x1 - HOOK)} {_num(y1)}"
                f" {_num(x1)} {_num(y1)}",
            ]
            label_x, label_y = (x0 + x1) / 2, lane
            extent_x.append(x0 + HOOK)
            extent_y.append(lane)
        label_x, label_y = round(label_x, 1), round(label_y, 1)
        if edge.branch:
            extent_x.append(label_x + LABEL_HALF_WIDTH)
            extent_y.append(label_y + 8)
        placed_edges.append(
            PlacedEdge(
                source=edge.source,
                target=edge.target,
                branch=str(edge.branch) if edge.branch else None,
                path=" ".join(parts),
                label_x=label_x,
                label_y=label_y,
                is_back_edge=i in back,
            )
        )

    return GraphLayout(
        width=math.ceil(max(extent_x) + MARGIN),
        height=math.ceil(max(extent_y) + MARGIN),
        nodes=[placed[key] for key in keys],
        edges=placed_edges,
    )
