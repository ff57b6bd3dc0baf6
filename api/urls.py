from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from api.views import CallViewSet, LeadViewSet, WorkflowViewSet

router = SimpleRouter(trailing_slash=False)
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("leads", LeadViewSet, basename="lead")
router.register("calls", CallViewSet, basename="call")

urlpatterns = [
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    *router.urls,
]
