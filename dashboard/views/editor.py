"""The draft graph editor: add, edit and delete nodes; connect and disconnect outputs."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from dashboard.access import workflow_for_manager
from dashboard.forms import EdgeForm, NodeForm
from workflows.editing import GraphEditRefused, add_edge, delete_edge, delete_node, save_node
from workflows.models import Node


def _back(pk: int):
    return redirect("workflow-detail", pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def node_form(request, pk: int, key: str | None = None):
    workflow = workflow_for_manager(request, pk)
    node = get_object_or_404(Node, workflow=workflow, key=key) if key else None
    initial = {}
    if node is not None:
        initial = {"key": node.key, "name": node.name, "type": node.type, **node.config}
    form = NodeForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            save_node(
                workflow.pk,
                key=data["key"],
                name=data["name"],
                type=data["type"],
                config=form.config(),
                existing_key=key,
            )
        except GraphEditRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved node '{data['name']}'.")
            return _back(pk)
    return render(
        request, "dashboard/node_form.html", {"workflow": workflow, "form": form, "node": node}
    )


@login_required
@require_POST
def node_delete(request, pk: int, key: str):
    workflow = workflow_for_manager(request, pk)
    try:
        delete_node(workflow.pk, key)
        messages.success(request, f"Deleted node '{key}' and its edges.")
    except GraphEditRefused as exc:
        messages.error(request, str(exc))
    return _back(pk)


@login_required
@require_POST
def edge_add(request, pk: int):
    workflow = workflow_for_manager(request, pk)
    keys = list(workflow.nodes.order_by("id").values_list("key", flat=True))
    form = EdgeForm(request.POST, node_keys=keys)
    if form.is_valid():
        try:
            add_edge(
                workflow.pk,
                source=form.cleaned_data["source"],
                target=form.cleaned_data["target"],
                branch=form.cleaned_data["branch"],
            )
            messages.success(request, "Connected.")
        except GraphEditRefused as exc:
            messages.error(request, str(exc))
    else:
        messages.error(request, "Choose a source and a target node.")
    return _back(pk)


@login_required
@require_POST
def edge_delete(request, pk: int, edge_id: int):
    workflow = workflow_for_manager(request, pk)
    try:
        delete_edge(workflow.pk, edge_id)
        messages.success(request, "Edge removed.")
    except GraphEditRefused as exc:
        messages.error(request, str(exc))
    return _back(pk)
