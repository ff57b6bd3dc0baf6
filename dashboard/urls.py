from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard.views import editor, leads, pages, workflows

urlpatterns = [
    path("", workflows.workflow_list, name="workflow-list"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("workspace", pages.switch_workspace, name="switch-workspace"),
    path("statuses/", pages.statuses, name="statuses"),
    path("workflows/new", workflows.workflow_new, name="workflow-new"),
    path("workflows/<int:pk>/", workflows.workflow_detail, name="workflow-detail"),
    path("workflows/<int:pk>/header", workflows.workflow_header, name="workflow-header"),
    path("workflows/<int:pk>/graph", workflows.workflow_graph_fragment, name="workflow-graph"),
    path(
        "workflows/<int:pk>/actions/<str:action>", workflows.workflow_action, name="workflow-action"
    ),
    path("workflows/<int:pk>/leads", leads.workflow_leads, name="workflow-leads"),
    path("workflows/<int:pk>/leads.csv", leads.workflow_leads_csv, name="workflow-leads-csv"),
    path("workflows/<int:pk>/leads/bulk", leads.workflow_leads_bulk, name="workflow-leads-bulk"),
    path("workflows/<int:pk>/calls", workflows.workflow_calls, name="workflow-calls"),
    path("workflows/<int:pk>/activity", workflows.workflow_activity, name="workflow-activity"),
    path("workflows/<int:pk>/settings", workflows.workflow_settings, name="workflow-settings"),
    path("workflows/<int:pk>/nodes/new", editor.node_form, name="node-new"),
    path("workflows/<int:pk>/nodes/<str:key>/edit", editor.node_form, name="node-edit"),
    path("workflows/<int:pk>/nodes/<str:key>/delete", editor.node_delete, name="node-delete"),
    path("workflows/<int:pk>/edges/new", editor.edge_add, name="edge-new"),
    path("workflows/<int:pk>/edges/<int:edge_id>/delete", editor.edge_delete, name="edge-delete"),
    path("workflows/<int:pk>/lead-files", leads.lead_file_upload, name="lead-file-upload"),
    path("lead-files/<int:pk>/", leads.lead_file_detail, name="lead-file-detail"),
    path("lead-files/<int:pk>/errors.csv", leads.lead_file_errors, name="lead-file-errors"),
    path("leads/<int:pk>/", leads.lead_detail, name="lead-detail"),
    path("leads/<int:pk>/actions/<str:action>", leads.lead_action, name="lead-action"),
    path("calls/<int:pk>/", pages.call_detail, name="call-detail"),
]
