"""Graph validation on activate (SPEC 3): one test per rule of `validate_graph`.

Pure unit tests over plain NodeSpec/EdgeSpec data: no database.

Every test starts from the same valid baseline graph and changes one thing, so each
problem it expects can only come from the rule under test:

    start (entry) -> call (voice_call "Call 1")
    call COMPLETED -> sync (application) -> won (converted)
    call DNP       -> wait (time, 60 s)  -> call
    call FAILED    -> lost (dropped)
"""

from dataclasses import replace

import pytest

from workflows.graph import EdgeSpec, GraphReport, NodeSpec, Problem, validate_graph
from workflows.statuses import Branch, NodeType

VALID_CONFIG = {
    "start": {},
    "call": {"agent": "Ava", "script": "Hello"},
    "sync": {"url": "https://crm.example.com/hook", "timeout_seconds": 10},
    "wait": {"delay_seconds": 60},
    "won": {},
    "lost": {},
}


def baseline_nodes() -> list[NodeSpec]:
    return [
        NodeSpec("start", NodeType.ENTRY, "Start", VALID_CONFIG["start"]),
        NodeSpec("call", NodeType.VOICE_CALL, "Call 1", VALID_CONFIG["call"]),
        NodeSpec("sync", NodeType.APPLICATION, "CRM sync", VALID_CONFIG["sync"]),
        NodeSpec("wait", NodeType.TIME, "Wait a minute", VALID_CONFIG["wait"]),
        NodeSpec("won", NodeType.CONVERTED, "Won", VALID_CONFIG["won"]),
        NodeSpec("lost", NodeType.DROPPED, "Lost", VALID_CONFIG["lost"]),
    ]


def baseline_edges() -> list[EdgeSpec]:
    return [
        EdgeSpec("start", "call"),
        EdgeSpec("call", "sync", Branch.COMPLETED),
        EdgeSpec("sync", "won"),
        EdgeSpec("call", "wait", Branch.DNP),
        EdgeSpec("wait", "call"),
        EdgeSpec("call", "lost", Branch.FAILED),
    ]


def with_config(nodes: list[NodeSpec], key: str, config: object) -> list[NodeSpec]:
    return [replace(n, config=config) if n.key == key else n for n in nodes]


def without_edge(edges: list[EdgeSpec], source: str, target: str) -> list[EdgeSpec]:
    kept = [e for e in edges if (e.source, e.target) != (source, target)]
    assert len(kept) == len(edges) - 1, f"no edge {source} -> {target} to remove"
    return kept


def problems_for(problems: list[Problem], node: str | None) -> list[str]:
    return [p.message for p in problems if p.node == node]


def assert_error(report: GraphReport, node: str | None, fragment: str) -> None:
    messages = problems_for(report.errors, node)
    assert any(fragment in m for m in messages), (
        f"expected an error on {node!r} containing {fragment!r}; "
        f"errors were {[p.as_dict() for p in report.errors]}"
    )


def test_the_valid_baseline_graph_has_no_errors_and_no_warnings():
    report = validate_graph(baseline_nodes(), baseline_edges(), has_leads=True)

    assert report.errors == []
    assert report.warnings == []
    assert report.is_valid


def test_a_workflow_without_an_entry_node_is_an_error():
    nodes = [n for n in baseline_nodes() if n.key != "start"]
    edges = without_edge(baseline_edges(), "start", "call")

    report = validate_graph(nodes, edges)

    assert not report.is_valid
    assert_error(report, None, "no entry node")


def test_a_second_entry_node_is_an_error_naming_the_extra_entry():
    nodes = [*baseline_nodes(), NodeSpec("start-2", NodeType.ENTRY, "Second start")]
    edges = [*baseline_edges(), EdgeSpec("start-2", "call")]

    report = validate_graph(nodes, edges)

    assert_error(report, "start-2", "second entry node")
    assert not any("second entry" in m for m in problems_for(report.errors, "start"))


@pytest.mark.parametrize(
    ("edges_change", "count"),
    [
        pytest.param(lambda edges: without_edge(edges, "start", "call"), 0, id="no-output"),
        pytest.param(lambda edges: [*edges, EdgeSpec("start", "lost")], 2, id="two-outputs"),
    ],
)
def test_an_entry_node_without_exactly_one_output_is_an_error_naming_it(edges_change, count):
    report = validate_graph(baseline_nodes(), edges_change(baseline_edges()))

    assert_error(report, "start", f"needs exactly one output (it has {count})")


@pytest.mark.parametrize("terminal", ["won", "lost"])
def test_an_edge_out_of_a_terminal_node_is_an_error_naming_the_terminal(terminal):
    other = "lost" if terminal == "won" else "won"
    edges = [*baseline_edges(), EdgeSpec(terminal, other)]

    report = validate_graph(baseline_nodes(), edges)

    assert_error(report, terminal, "is a terminal node but has 1 output(s)")
    assert problems_for(report.errors, other) == []


def test_an_edge_into_the_entry_node_is_an_error_naming_the_entry():
    edges = [
        *without_edge(baseline_edges(), "call", "lost"),
        EdgeSpec("call", "start", Branch.FAILED),
    ]

    report = validate_graph(baseline_nodes(), edges)

    assert_error(report, "start", "connects into the entry node 'Start'")
    assert_error(report, "start", "'Call 1'")


def test_a_node_unreachable_from_the_entry_is_an_error_naming_it():
    nodes = [
        *baseline_nodes(),
        NodeSpec("orphan", NodeType.APPLICATION, "Orphan", VALID_CONFIG["sync"]),
    ]
    edges = [*baseline_edges(), EdgeSpec("orphan", "won")]

    report = validate_graph(nodes, edges)

    assert report.errors == [
        Problem("orphan", "'Orphan' cannot be reached from the entry node."),
    ]


def test_a_node_from_which_no_terminal_is_reachable_is_an_error_naming_it():
    # The DNP wait now loops back to itself instead of to the call: it still has one output,
    # its loop waits (so no cycle error) and it is reachable, but a lead there never finishes.
    edges = [*without_edge(baseline_edges(), "wait", "call"), EdgeSpec("wait", "wait")]

    report = validate_graph(baseline_nodes(), edges)

    assert report.errors == [
        Problem(
            "wait",
            "No terminal node can be reached from 'Wait a minute': leads there could never finish.",
        )
    ]


@pytest.mark.parametrize(
    ("node", "edges_change", "count"),
    [
        pytest.param(
            "wait",
            lambda edges: without_edge(edges, "wait", "call"),
            0,
            id="time-no-output",
        ),
        pytest.param(
            "wait",
            lambda edges: [*edges, EdgeSpec("wait", "lost")],
            2,
            id="time-two-outputs",
        ),
        pytest.param(
            "sync",
            lambda edges: without_edge(edges, "sync", "won"),
            0,
            id="application-no-output",
        ),
        pytest.param(
            "sync",
            lambda edges: [*edges, EdgeSpec("sync", "lost")],
            2,
            id="application-two-outputs",
        ),
    ],
)
def test_a_time_or_application_node_without_exactly_one_output_is_an_error_naming_it(
    node, edges_change, count
):
    report = validate_graph(baseline_nodes(), edges_change(baseline_edges()))

    assert_error(report, node, f"needs exactly one output (it has {count})")


@pytest.mark.parametrize("bad_label", [None, "", "dnp", "BUSY"])
def test_a_voice_call_output_without_a_valid_label_is_an_error_naming_the_call(bad_label):
    edges = [
        *without_edge(baseline_edges(), "call", "wait"),
        EdgeSpec("call", "wait", bad_label),
    ]

    report = validate_graph(baseline_nodes(), edges)

    assert_error(report, "call", "has an output to 'Wait a minute' without a COMPLETED, DNP")


def test_a_duplicated_voice_call_label_is_an_error_naming_the_call():
    edges = [*baseline_edges(), EdgeSpec("call", "won", Branch.COMPLETED)]

    report = validate_graph(baseline_nodes(), edges)

    assert report.errors == [Problem("call", "'Call 1' has more than one COMPLETED output.")]


@pytest.mark.parametrize(
    ("source", "target"),
    [("start", "call"), ("wait", "call"), ("sync", "won")],
    ids=["entry", "time", "application"],
)
def test_a_branch_label_on_a_non_voice_call_output_is_an_error_naming_the_source(source, target):
    edges = [*without_edge(baseline_edges(), source, target), EdgeSpec(source, target, Branch.DNP)]

    report = validate_graph(baseline_nodes(), edges)

    assert [p.node for p in report.errors] == [source]
    assert_error(report, source, "output must not carry a branch label")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        pytest.param({}, "exactly one of delay_seconds or at_local_time", id="neither"),
        pytest.param(
            {"delay_seconds": 60, "at_local_time": "09:00"},
            "exactly one of delay_seconds or at_local_time",
            id="both",
        ),
        pytest.param({"delay_seconds": 0}, "delay_seconds must be", id="delay-zero"),
        pytest.param({"delay_seconds": -5}, "delay_seconds must be", id="delay-negative"),
        pytest.param({"delay_seconds": 1.5}, "delay_seconds must be", id="delay-float"),
        pytest.param({"delay_seconds": "60"}, "delay_seconds must be", id="delay-string"),
        pytest.param({"delay_seconds": True}, "delay_seconds must be", id="delay-bool"),
        pytest.param({"at_local_time": "25:00"}, "at_local_time must be", id="time-25:00"),
        pytest.param({"at_local_time": "12:60"}, "at_local_time must be", id="time-12:60"),
        pytest.param({"at_local_time": 900}, "at_local_time must be", id="time-not-text"),
        pytest.param({"at_local_time": "09:00\n"}, "at_local_time must be", id="time-newline"),
    ],
)
def test_invalid_time_node_config_is_an_error_naming_the_node(config, fragment):
    report = validate_graph(with_config(baseline_nodes(), "wait", config), baseline_edges())

    assert_error(report, "wait", "'Wait a minute': invalid config: ")
    assert_error(report, "wait", fragment)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        pytest.param({}, "needs an http(s) url", id="missing-url"),
        pytest.param({"url": "ftp://files.example.com/in"}, "needs an http(s) url", id="ftp"),
        pytest.param({"url": "https://"}, "needs an http(s) url", id="no-host"),
        pytest.param({"url": 42}, "needs an http(s) url", id="url-not-text"),
        pytest.param(
            {"url": "https://crm.example.com", "timeout_seconds": 0},
            "timeout_seconds must be",
            id="timeout-zero",
        ),
        pytest.param(
            {"url": "https://crm.example.com", "timeout_seconds": 121},
            "timeout_seconds must be",
            id="timeout-too-long",
        ),
        pytest.param(
            {"url": "https://crm.example.com", "timeout_seconds": "10"},
            "timeout_seconds must be",
            id="timeout-string",
        ),
        pytest.param(
            {"url": "https://crm.example.com", "timeout_seconds": True},
            "timeout_seconds must be",
            id="timeout-bool",
        ),
    ],
)
def test_invalid_application_node_config_is_an_error_naming_the_node(config, fragment):
    report = validate_graph(with_config(baseline_nodes(), "sync", config), baseline_edges())

    assert [p.node for p in report.errors] == ["sync"]
    assert_error(report, "sync", "'CRM sync': invalid config: ")
    assert_error(report, "sync", fragment)


@pytest.mark.parametrize("field", ["agent", "script"])
def test_a_voice_call_agent_or_script_that_is_not_text_is_an_error_naming_the_node(field):
    config = {**VALID_CONFIG["call"], field: 7}

    report = validate_graph(with_config(baseline_nodes(), "call", config), baseline_edges())

    assert report.errors == [Problem("call", f"'Call 1': invalid config: {field} must be text.")]


@pytest.mark.parametrize(
    ("node", "type_", "config", "unknown"),
    [
        ("wait", "time", {"delay_seconds": 60, "jitter": 5}, "jitter"),
        ("sync", "application", {"url": "https://crm.example.com", "method": "PUT"}, "method"),
        ("call", "voice_call", {"agent": "Ava", "voice": "warm"}, "voice"),
        ("start", "entry", {"anything": 1}, "anything"),
    ],
    ids=["time", "application", "voice_call", "entry"],
)
def test_unknown_config_keys_are_an_error_naming_the_node(node, type_, config, unknown):
    report = validate_graph(with_config(baseline_nodes(), node, config), baseline_edges())

    assert_error(
        report, node, f"invalid config: unknown config field(s) for a {type_} node: {unknown}"
    )


@pytest.mark.parametrize(("terminal", "type_"), [("won", "converted"), ("lost", "dropped")])
def test_a_terminal_node_with_config_keys_is_an_error_naming_it(terminal, type_):
    nodes = with_config(baseline_nodes(), terminal, {"reason": "sold"})

    report = validate_graph(nodes, baseline_edges())

    assert [p.node for p in report.errors] == [terminal]
    assert_error(report, terminal, f"unknown config field(s) for a {type_} node: reason")


def test_a_node_config_that_is_not_an_object_is_an_error_naming_it():
    report = validate_graph(with_config(baseline_nodes(), "sync", ["https://x"]), baseline_edges())

    assert report.errors == [
        Problem("sync", "'CRM sync': invalid config: config must be an object.")
    ]


def replace_wait_with_retry_hook(nodes: list[NodeSpec]) -> list[NodeSpec]:
    hook = NodeSpec("retry-hook", NodeType.APPLICATION, "Retry hook", VALID_CONFIG["sync"])
    return [hook if n.key == "wait" else n for n in nodes]


def route_dnp_through_retry_hook(edges: list[EdgeSpec]) -> list[EdgeSpec]:
    kept = [e for e in edges if "wait" not in (e.source, e.target)]
    return [*kept, EdgeSpec("call", "retry-hook", Branch.DNP), EdgeSpec("retry-hook", "call")]


@pytest.mark.parametrize(
    ("nodes_change", "edges_change", "cycle"),
    [
        pytest.param(
            replace_wait_with_retry_hook,
            route_dnp_through_retry_hook,
            {"call", "retry-hook"},
            id="call-dnp-application-call",
        ),
        pytest.param(
            lambda nodes: [n for n in nodes if n.key != "wait"],
            lambda edges: [
                *[e for e in edges if "wait" not in (e.source, e.target)],
                EdgeSpec("call", "call", Branch.DNP),
            ],
            {"call"},
            id="call-dnp-self-loop",
        ),
        pytest.param(
            lambda nodes: with_config(nodes, "wait", {"delay_seconds": 0}),
            lambda edges: edges,
            {"call", "wait"},
            id="through-time-with-zero-wait",
        ),
    ],
)
def test_a_cycle_without_a_positive_time_wait_is_an_error_naming_a_node_on_it(
    nodes_change, edges_change, cycle
):
    report = validate_graph(nodes_change(baseline_nodes()), edges_change(baseline_edges()))

    cycle_errors = [
        p for p in report.errors if "has no time node with a positive wait" in p.message
    ]
    assert len(cycle_errors) == 1
    assert cycle_errors[0].node in cycle
    for key in cycle:
        assert key in cycle_errors[0].message


@pytest.mark.parametrize(
    "wait_config", [{"delay_seconds": 60}, {"at_local_time": "09:00"}], ids=["delay", "local-time"]
)
def test_a_cycle_through_a_time_node_with_a_positive_wait_is_accepted(wait_config):
    nodes = [
        NodeSpec("start", NodeType.ENTRY, "Start"),
        NodeSpec("call", NodeType.VOICE_CALL, "Call 1"),
        NodeSpec("wait", NodeType.TIME, "Wait", wait_config),
        NodeSpec("won", NodeType.CONVERTED, "Won"),
        NodeSpec("lost", NodeType.DROPPED, "Lost"),
    ]
    edges = [
        EdgeSpec("start", "call"),
        EdgeSpec("call", "wait", Branch.DNP),
        EdgeSpec("wait", "call"),
        EdgeSpec("call", "won", Branch.COMPLETED),
        EdgeSpec("call", "lost", Branch.FAILED),
    ]

    report = validate_graph(nodes, edges)

    assert report.errors == []


def test_a_voice_call_node_missing_an_output_is_a_warning_naming_it_not_an_error():
    nodes = [n for n in baseline_nodes() if n.key != "wait"]
    edges = [e for e in baseline_edges() if "wait" not in (e.source, e.target)]

    report = validate_graph(nodes, edges)

    assert report.errors == []
    assert report.is_valid
    assert report.warnings == [
        Problem(
            "call",
            "'Call 1' has no DNP output: leads whose call ends DNP will stay at 'Call 1'.",
        )
    ]


def test_a_workflow_with_no_leads_is_a_warning_not_an_error():
    report = validate_graph(baseline_nodes(), baseline_edges(), has_leads=False)

    assert report.errors == []
    assert len(report.warnings) == 1
    assert report.warnings[0].node is None
    assert "no leads" in report.warnings[0].message


def test_an_edge_naming_an_unknown_node_is_an_error_naming_its_known_source():
    edges = [*baseline_edges(), EdgeSpec("sync", "ghost")]

    report = validate_graph(baseline_nodes(), edges)

    assert report.errors == [
        Problem("sync", "An edge sync -> ghost names an unknown node 'ghost'."),
    ]
