from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from api.views import CallViewSet, LeadFileViewSet, LeadViewSet, WorkflowViewSet
from api.webhooks import CallStatusWebhook

router = SimpleRouter(trailing_slash=False)
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("leads", LeadViewSet, basename="lead")
router.register("calls", CallViewSet, basename="call")
router.register("lead-files", LeadFileViewSet, basename="lead-file")

urlpatterns = [
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("calls/<int:pk>/status", CallStatusWebhook.as_view(), name="call-status-webhook"),
    *router.urls,
]
