"""The REST API under /api/v1/, its OpenAPI document and its docs (served offline)."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from auth.api.views import ApiTokenViewSet, AuditEntryViewSet, MeView, ResourceRequestViewSet
from containers.api.views import ContainerViewSet, JobViewSet, TemplateViewSet
from networking.api.views import NodeViewSet, SiteViewSet

app_name = "api"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("containers", ContainerViewSet, basename="container")
router.register("jobs", JobViewSet, basename="job")
router.register("templates", TemplateViewSet, basename="template")
router.register("sites", SiteViewSet, basename="site")
router.register("nodes", NodeViewSet, basename="node")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("resource-requests", ResourceRequestViewSet, basename="resource-request")
router.register("audit", AuditEntryViewSet, basename="audit")

urlpatterns = [
    path("", include(router.urls)),
    path("me/", MeView.as_view(), name="me"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
]
