"""Reading and writing a workflow's graph as the plain specs that `graph.validate_graph` checks."""

from django.db import transaction

from workflows.graph import EdgeSpec, GraphReport, NodeSpec, validate_graph
from workflows.models import Edge, Node, Workflow


def load_graph(workflow: Workflow) -> tuple[list[NodeSpec], list[EdgeSpec]]:
    nodes = [
        NodeSpec(key=n.key, type=n.type, name=n.name, config=n.config)
        for n in Node.objects.filter(workflow=workflow).order_by("id")
    ]
    edges = [
        EdgeSpec(source=source, target=target, branch=branch)
        for source, target, branch in Edge.objects.filter(workflow=workflow)
        .order_by("id")
        .values_list("source__key", "target__key", "branch")
    ]
    return nodes, edges


def check_graph(workflow: Workflow) -> GraphReport:
    nodes, edges = load_graph(workflow)
    return validate_graph(nodes, edges, has_leads=workflow.leads.exists())


def replace_graph(workflow: Workflow, nodes: list[NodeSpec], edges: list[EdgeSpec]) -> None:
    """Swap the whole graph for a new one. Callers check the workflow is a draft."""
    with transaction.atomic():
        Edge.objects.filter(workflow=workflow).delete()
        Node.objects.filter(workflow=workflow).delete()
        created = Node.objects.bulk_create(
            Node(workflow=workflow, key=n.key, type=n.type, name=n.name or n.key, config=n.config)
            for n in nodes
        )
        by_key = {n.key: n for n in created}
        Edge.objects.bulk_create(
            Edge(
                workflow=workflow,
                source=by_key[e.source],
                target=by_key[e.target],
                branch=e.branch or None,
            )
            for e in edges
        )
