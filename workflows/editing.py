"""Editing a draft workflow's graph one node or edge at a time (the dashboard's editor).

Only a draft's graph can change (SPEC 3); the structural rules are checked as a whole by
graph.validate_graph, shown beside the editor and enforced on activation.
"""

from django.db import IntegrityError, transaction

from workflows.graph import config_errors
from workflows.models import Edge, Node, Workflow
from workflows.statuses import Branch, NodeType, WorkflowStatus


class GraphEditRefused(Exception):
    pass


def _draft(workflow_id: int) -> Workflow:
    workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
    if workflow.status != WorkflowStatus.DRAFT:
        raise GraphEditRefused(
            f"Only a draft workflow's graph can be edited; this one is {workflow.status}. "
            "Duplicate it to get an editable copy."
        )
    return workflow


def save_node(
    workflow_id: int,
    *,
    key: str,
    name: str,
    type: str,
    config: dict,
    existing_key: str | None = None,
) -> Node:
    problems = config_errors(type, config)
    if problems:
        raise GraphEditRefused(f"'{name}': " + "; ".join(problems) + ".")
    with transaction.atomic():
        workflow = _draft(workflow_id)
        clash = Node.objects.filter(workflow=workflow, key=key)
        if existing_key is not None:
            clash = clash.exclude(key=existing_key)
        if clash.exists():
            raise GraphEditRefused(f"The key '{key}' is already used by another node.")
        if existing_key is None:
            return Node.objects.create(
                workflow=workflow, key=key, name=name, type=type, config=config
            )
        node = Node.objects.get(workflow=workflow, key=existing_key)
        node.key, node.name, node.type, node.config = key, name, type, config
        node.save()
        if type != NodeType.VOICE_CALL:
            Edge.objects.filter(source=node).exclude(branch=None).update(branch=None)
        return node


def delete_node(workflow_id: int, key: str) -> None:
    with transaction.atomic():
        workflow = _draft(workflow_id)
        deleted, _ = Node.objects.filter(workflow=workflow, key=key).delete()
        if not deleted:
            raise GraphEditRefused(f"There is no node '{key}'.")


def add_edge(workflow_id: int, *, source: str, target: str, branch: str | None) -> Edge:
    with transaction.atomic():
        workflow = _draft(workflow_id)
        nodes = {n.key: n for n in Node.objects.filter(workflow=workflow, key__in=[source, target])}
        if source not in nodes or target not in nodes:
            raise GraphEditRefused("Both ends of an edge must be nodes of this workflow.")
        if branch and branch not in Branch.values:
            raise GraphEditRefused(f"'{branch}' is not an output label.")
        try:
            with transaction.atomic():
                return Edge.objects.create(
                    workflow=workflow,
                    source=nodes[source],
                    target=nodes[target],
                    branch=branch or None,
                )
        except IntegrityError:
            raise GraphEditRefused(f"'{source}' already has a {branch} output.") from None


def delete_edge(workflow_id: int, edge_id: int) -> None:
    with transaction.atomic():
        workflow = _draft(workflow_id)
        deleted, _ = Edge.objects.filter(workflow=workflow, pk=edge_id).delete()
        if not deleted:
            raise GraphEditRefused("That edge no longer exists.")
