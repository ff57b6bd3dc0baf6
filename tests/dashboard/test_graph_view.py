"""The workflow graph drawing: the layered layout (dashboard.graph_view.layout) and its SVG
template (dashboard/_graph_svg.html).

Pure tests over plain NodeSpec/EdgeSpec data and a template render: no database.
"""

import re
import xml.etree.ElementTree as ET
from collections import defaultdict, deque
from itertools import combinations

from django.template.loader import render_to_string
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.graph_view import GraphLayout, PlacedEdge, PlacedNode, layout
from engine.demo import DEMO_EDGES, DEMO_NODES
from workflows.graph import EdgeSpec, NodeSpec
from workflows.statuses import Branch, NodeType

SVG = "{http://www.w3.org/2000/svg}"


def baseline() -> tuple[list[NodeSpec], list[EdgeSpec]]:
    """start -> call; call COMPLETED -> sync -> won; DNP -> wait -> call; FAILED -> lost."""
    nodes = [
        NodeSpec("start", NodeType.ENTRY, "Start"),
        NodeSpec("call", NodeType.VOICE_CALL, "Call 1"),
        NodeSpec("sync", NodeType.APPLICATION, "CRM sync"),
        NodeSpec("wait", NodeType.TIME, "Wait a minute", {"delay_seconds": 60}),
        NodeSpec("won", NodeType.CONVERTED, "Won"),
        NodeSpec("lost", NodeType.DROPPED, "Lost"),
    ]
    edges = [
        EdgeSpec("start", "call"),
        EdgeSpec("call", "sync", Branch.COMPLETED),
        EdgeSpec("sync", "won"),
        EdgeSpec("call", "wait", Branch.DNP),
        EdgeSpec("wait", "call"),
        EdgeSpec("call", "lost", Branch.FAILED),
    ]
    return nodes, edges


def layers(result: GraphLayout) -> dict[str, int]:
    """Each node's layer: the rank of its column (every layer holds at least one node)."""
    columns = sorted({node.x for node in result.nodes})
    return {node.key: columns.index(node.x) for node in result.nodes}


def by_key(result: GraphLayout) -> dict[str, PlacedNode]:
    return {node.key: node for node in result.nodes}


def path_points(edge: PlacedEdge) -> list[tuple[float, float]]:
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", edge.path)]
    assert len(numbers) % 2 == 0
    return list(zip(numbers[::2], numbers[1::2], strict=True))


def reachable_from(start: str, edges: list[EdgeSpec]) -> set[str]:
    out = defaultdict(list)
    for edge in edges:
        out[edge.source].append(edge.target)
    seen, queue = {start}, deque([start])
    while queue:
        for nxt in out[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def assert_well_formed(result: GraphLayout, nodes: list[NodeSpec], edges: list[EdgeSpec]):
    """The invariants every layout keeps, whatever the graph."""
    placed = by_key(result)
    assert list(placed) == list(dict.fromkeys(n.key for n in nodes))
    # No two boxes overlap.
    for a, b in combinations(result.nodes, 2):
        assert a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y, (
            f"{a.key} overlaps {b.key}"
        )
    # The view box holds every box, every curve (control points bound a cubic) and label.
    for node in result.nodes:
        assert node.x >= 0 and node.x + node.w <= result.width
        assert node.y >= 0 and node.y + node.h <= result.height
    for edge in result.edges:
        for x, y in [*path_points(edge), (edge.label_x, edge.label_y)]:
            assert 0 <= x <= result.width and 0 <= y <= result.height, edge
    # Each curve leaves the right side of its source and ends on the left side of its target.
    assert len(result.edges) == len(edges)
    for edge in result.edges:
        source, target = placed[edge.source], placed[edge.target]
        (x0, y0), (x1, y1) = path_points(edge)[0], path_points(edge)[-1]
        assert x0 == source.x + source.w and source.y < y0 < source.y + source.h
        assert x1 == target.x and target.y < y1 < target.y + target.h
    # Labels of edges leaving one node never share a position.
    for source in placed:
        labels = [(e.label_x, e.label_y) for e in result.edges if e.source == source]
        assert len(labels) == len(set(labels)), source


def test_entry_is_alone_in_the_first_layer():
    nodes, edges = baseline()
    result = layout(nodes, edges)
    layer = layers(result)
    assert layer["start"] == 0
    assert [key for key, li in layer.items() if li == 0] == ["start"]
    assert layer == {"start": 0, "call": 1, "sync": 2, "wait": 2, "lost": 2, "won": 3}
    assert_well_formed(result, nodes, edges)


def test_layers_are_longest_path_distances():
    # won is reached both from call (layer 1) and from sync (layer 2): it goes after sync.
    nodes, edges = baseline()
    edges.append(EdgeSpec("start", "won"))  # invalid for an entry, still drawn
    assert layers(layout(nodes, edges))["won"] == 3


def test_every_edge_but_the_back_edges_runs_left_to_right():
    nodes, edges = baseline()
    result = layout(nodes, edges)
    layer = layers(result)
    for edge in result.edges:
        if not edge.is_back_edge:
            assert layer[edge.source] < layer[edge.target], edge


def test_a_cycle_through_a_time_node_has_exactly_one_back_edge():
    nodes, edges = baseline()
    result = layout(nodes, edges)
    back = [(e.source, e.target) for e in result.edges if e.is_back_edge]
    assert back == [("wait", "call")]
    # Routed around, below the boxes it passes, entering its target from the left.
    edge = next(e for e in result.edges if e.is_back_edge)
    lowest = max(n.y + n.h for n in result.nodes if n.key in ("call", "wait"))
    assert edge.label_y > lowest
    assert max(y for _, y in path_points(edge)) > lowest


def test_no_two_boxes_overlap_and_the_view_box_holds_them():
    result = layout(DEMO_NODES, DEMO_EDGES)
    assert_well_formed(result, DEMO_NODES, DEMO_EDGES)
    assert {n.w for n in result.nodes} == {180} and {n.h for n in result.nodes} == {84}


def test_parallel_labelled_edges_get_their_own_curve_and_label():
    # The demo graph: call-2 -> lost on both DNP and FAILED.
    result = layout(DEMO_NODES, DEMO_EDGES)
    parallel = [e for e in result.edges if (e.source, e.target) == ("call-2", "lost")]
    assert sorted(e.branch for e in parallel) == ["DNP", "FAILED"]
    first, second = parallel
    assert (first.label_x, first.label_y) != (second.label_x, second.label_y)
    assert first.path != second.path


def test_parallel_back_edges_get_separate_lanes():
    nodes = [
        NodeSpec("start", NodeType.ENTRY),
        NodeSpec("call", NodeType.VOICE_CALL),
        NodeSpec("wait", NodeType.TIME),
    ]
    edges = [
        EdgeSpec("start", "call"),
        EdgeSpec("call", "wait", Branch.DNP),
        EdgeSpec("wait", "call", Branch.DNP),  # invalid labels, still drawn apart
        EdgeSpec("wait", "call", Branch.FAILED),
    ]
    result = layout(nodes, edges)
    back = [e for e in result.edges if e.is_back_edge]
    # The second parallel edge closes the same cycle (its target is still on the DFS stack).
    assert len(back) == 2
    assert back[0].label_y != back[1].label_y
    assert_well_formed(result, nodes, edges)


def test_long_edges_do_not_cross_the_boxes_they_pass():
    # call-1 -> won skips the wait and call-2 columns.
    result = layout(DEMO_NODES, DEMO_EDGES)
    placed = by_key(result)
    edge = next(e for e in result.edges if (e.source, e.target) == ("call-1", "won"))
    for x, y in path_points(edge):
        for node in placed.values():
            assert not (node.x < x < node.x + node.w and node.y < y < node.y + node.h), node


def test_unreachable_nodes_go_in_a_final_extra_layer():
    nodes, edges = baseline()
    nodes += [NodeSpec("orphan", NodeType.TIME, "Orphan"), NodeSpec("stray", NodeType.DROPPED)]
    edges += [EdgeSpec("orphan", "stray"), EdgeSpec("orphan", "call")]
    result = layout(nodes, edges)
    layer = layers(result)
    last = max(layer[k] for k in ("start", "call", "sync", "wait", "won", "lost"))
    assert layer["orphan"] == layer["stray"] == last + 1
    assert by_key(result)["stray"].name == "stray"  # no name: the key is shown
    assert_well_formed(result, nodes, edges)


def test_a_self_loop_is_a_back_edge_routed_below_its_node():
    nodes = [NodeSpec("start", NodeType.ENTRY), NodeSpec("wait", NodeType.TIME)]
    edges = [EdgeSpec("start", "wait"), EdgeSpec("wait", "wait")]
    result = layout(nodes, edges)
    loop = result.edges[1]
    assert loop.is_back_edge
    wait = by_key(result)["wait"]
    assert loop.label_y > wait.y + wait.h
    assert_well_formed(result, nodes, edges)


def test_a_graph_without_an_entry_is_laid_out_from_its_sources():
    nodes = [
        NodeSpec("b", NodeType.TIME),
        NodeSpec("a", NodeType.VOICE_CALL),
        NodeSpec("c", NodeType.CONVERTED),
    ]
    edges = [EdgeSpec("a", "b", Branch.DNP), EdgeSpec("b", "c")]
    result = layout(nodes, edges)
    assert layers(result) == {"a": 0, "b": 1, "c": 2}
    assert not any(e.is_back_edge for e in result.edges)
    assert_well_formed(result, nodes, edges)

    # All in a cycle, no source: from the first node.
    cycle = [EdgeSpec("a", "b"), EdgeSpec("b", "a")]
    result = layout(nodes[:2], cycle)
    assert layers(result) == {"b": 0, "a": 1}
    assert [(e.source, e.target) for e in result.edges if e.is_back_edge] == [("a", "b")]


def test_an_empty_graph_has_a_small_empty_view():
    result = layout([], [])
    assert result.nodes == [] and result.edges == [] and result.is_empty
    assert result.width > 0 and result.height > 0
    # Edges naming unknown nodes are left out rather than failing.
    assert layout([], [EdgeSpec("a", "b")]).edges == []


def test_duplicate_keys_and_unknown_edges_are_left_out():
    nodes = [NodeSpec("start", NodeType.ENTRY, "First"), NodeSpec("start", NodeType.TIME)]
    result = layout(nodes, [EdgeSpec("start", "ghost")])
    assert [(n.key, n.name, n.type) for n in result.nodes] == [("start", "First", "entry")]
    assert result.edges == []


def test_the_layout_is_deterministic():
    assert layout(DEMO_NODES, DEMO_EDGES) == layout(list(DEMO_NODES), list(DEMO_EDGES))


NODE_TYPES = [t for t in NodeType if t != NodeType.ENTRY]


@st.composite
def graphs(draw):
    size = draw(st.integers(min_value=1, max_value=12))
    nodes = [NodeSpec("n0", NodeType.ENTRY)] + [
        NodeSpec(f"n{i}", draw(st.sampled_from(NODE_TYPES))) for i in range(1, size)
    ]
    pairs = st.tuples(
        st.integers(0, size - 1),
        st.integers(0, size - 1),
        st.sampled_from([None, *Branch.values]),
    )
    edges = [EdgeSpec(f"n{a}", f"n{b}", branch) for a, b, branch in draw(st.lists(pairs))]
    return nodes, edges


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_any_graph_gets_a_well_formed_layout(graph):
    nodes, edges = graph
    result = layout(nodes, edges)
    assert_well_formed(result, nodes, edges)
    layer = layers(result)
    assert [k for k, li in layer.items() if li == 0] == ["n0"]
    reachable = reachable_from("n0", edges)
    for edge in result.edges:
        if edge.source in reachable and not edge.is_back_edge:
            assert layer[edge.source] < layer[edge.target], edge
    for key in layer:
        if key not in reachable:
            assert layer[key] == max(layer.values())
    # Without the back edges the graph has no cycle left.
    forward = defaultdict(list)
    indegree = dict.fromkeys(layer, 0)
    for edge in result.edges:
        if not edge.is_back_edge:
            forward[edge.source].append(edge.target)
            indegree[edge.target] += 1
    ready = [k for k, d in indegree.items() if d == 0]
    done = 0
    while ready:
        done += 1
        for target in forward[ready.pop()]:
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    assert done == len(layer)
    assert layout(nodes, edges) == result


# The template


def render(result: GraphLayout, counts: dict, leads_url: str = "/workflows/7/leads/") -> str:
    return render_to_string(
        "dashboard/_graph_svg.html", {"layout": result, "counts": counts, "leads_url": leads_url}
    )


def classes(element: ET.Element) -> list[str]:
    return element.get("class", "").split()


def node_group(svg: ET.Element, key: str) -> ET.Element:
    (group,) = [g for g in svg.iter(f"{SVG}g") if g.get("data-node") == key]
    return group


def count_in(group: ET.Element, name: str) -> str:
    (element,) = [e for e in group.iter() if f"count-{name}" in classes(e)]
    return element.text


DEMO_COUNTS = {
    "start": {"active": 0, "waiting_release": 0, "waiting_call": 0, "needs_review": 0},
    "call-1": {"active": 12, "waiting_release": 3, "waiting_call": 2, "needs_review": 1},
    "wait-retry": {"active": 7, "waiting_release": 7, "waiting_call": 0, "needs_review": 0},
    # call-2 missing: counted as zeros
}


def test_the_svg_links_each_node_to_its_leads_and_shows_its_counts():
    html = render(layout(DEMO_NODES, DEMO_EDGES), DEMO_COUNTS)
    svg = ET.fromstring(html)  # well-formed XML
    assert svg.tag == f"{SVG}svg" and svg.get("id") == "graph"
    assert svg.get("role") == "group"  # not img: its node links must stay reachable
    assert svg.get("width") == "100%"
    result = layout(DEMO_NODES, DEMO_EDGES)
    assert svg.get("viewBox") == f"0 0 {result.width} {result.height}"
    title_ids = svg.get("aria-labelledby").split()
    assert svg.find(f"{SVG}title").get("id") in title_ids

    links = [a.get("href") for a in svg.iter(f"{SVG}a")]
    assert links == [f"/workflows/7/leads/?node={n.key}" for n in DEMO_NODES]

    call = node_group(svg, "call-1")
    assert {name: count_in(call, name) for name in DEMO_COUNTS["call-1"]} == {
        "active": "12",
        "waiting_release": "3",
        "waiting_call": "2",
        "needs_review": "1",
    }
    assert "has-review" in classes(call) and "node-voice_call" in classes(call)
    assert "".join(call.itertext()).count("Voice Call") >= 1
    wait = node_group(svg, "wait-retry")
    assert count_in(wait, "active") == "7" and count_in(wait, "needs_review") == "0"
    assert "has-review" not in classes(wait)
    assert count_in(node_group(svg, "call-2"), "active") == "0"
    assert not [e for e in wait.iter() if "is-alert" in classes(e)]
    assert [e for e in call.iter() if "is-alert" in classes(e)]


def test_the_svg_draws_every_edge_with_an_arrow_and_labels_the_branches():
    html = render(layout(DEMO_NODES, DEMO_EDGES), {})
    svg = ET.fromstring(html)
    paths = [p for p in svg.iter(f"{SVG}path") if "graph-edge" in classes(p)]
    assert len(paths) == len(DEMO_EDGES)
    assert {p.get("marker-end") for p in paths} == {"url(#graph-arrow)"}
    assert svg.find(f".//{SVG}marker[@id='graph-arrow']") is not None
    labels = [t.text for t in svg.iter(f"{SVG}text") if "edge-label" in classes(t)]
    assert sorted(labels) == sorted(e.branch for e in DEMO_EDGES if e.branch)
    assert {"COMPLETED", "DNP", "FAILED"} <= set(labels)


def test_the_svg_escapes_node_names():
    nodes = [
        NodeSpec("start", NodeType.ENTRY, "<script>alert(1)</script>"),
        NodeSpec("won", NodeType.CONVERTED, 'Tom & "Jerry"'),
    ]
    html = render(layout(nodes, [EdgeSpec("start", "won")]), {})
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)" in html
    assert "Tom &amp; &quot;Jerry&quot;" in html
    svg = ET.fromstring(html)
    names = [t.text for t in svg.iter(f"{SVG}text") if "node-name" in classes(t)]
    assert names[0].startswith("<script>")  # shown as text
    assert names[1] == 'Tom & "Jerry"'


def test_the_svg_of_an_empty_graph():
    svg = ET.fromstring(render(layout([], []), {}))
    assert svg.get("viewBox") == f"0 0 {layout([], []).width} {layout([], []).height}"
    assert not list(svg.iter(f"{SVG}a"))
    assert "No nodes yet" in "".join(svg.itertext())
