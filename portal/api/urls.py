"""The REST API under /api/v1/, its OpenAPI document and its docs (served offline)."""

from __future__ import annotations

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from auth.api.notifications import NotificationSettingsView
from auth.api.sshkeys import SshKeyViewSet
from auth.api.views import (
    ApiTokenViewSet,
    AuditEntryViewSet,
    MeView,
    ResourceRequestViewSet,
    TokenLoginView,
)
from containers.api.alerts import AlertViewSet
from containers.api.deployments import DeploymentViewSet
from containers.api.views import ContainerViewSet, JobViewSet, TemplateViewSet
from networking.api.views import NodeViewSet, SiteViewSet

from .redoc import OfflineRedocView, redoc_bundle

app_name = "api"
DATA, BLOB = "data:", "blob:"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("containers", ContainerViewSet, basename="container")
router.register("jobs", JobViewSet, basename="job")
router.register("alerts", AlertViewSet, basename="alert")
router.register("templates", TemplateViewSet, basename="template")
router.register("sites", SiteViewSet, basename="site")
router.register("nodes", NodeViewSet, basename="node")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("resource-requests", ResourceRequestViewSet, basename="resource-request")
router.register("audit", AuditEntryViewSet, basename="audit")
router.register("ssh-keys", SshKeyViewSet, basename="ssh-key")
router.register("deployments", DeploymentViewSet, basename="deployment")

urlpatterns = [
    path("", include(router.urls)),
    path("me/", MeView.as_view(), name="me"),
    path("me/notifications/", NotificationSettingsView.as_view(), name="me-notifications"),
    path("auth/token/", TokenLoginView.as_view(), name="token-login"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Neither docs page runs inline script (CSP). Both draw icons from data: URIs; Redoc
    # also builds its styles at run time and searches in a blob: worker. Both work offline:
    # their files come from drf-spectacular-sidecar, Redoc's bundle less its CDN logo.
    path(
        "docs/",
        csp_update({"img-src": [DATA]})(
            SpectacularSwaggerSplitView.as_view(
                url_name="api:schema", template_name="api/swagger_ui.html"
            )
        ),
        name="docs",
    ),
    path(
        "redoc/",
        csp_update({"img-src": [DATA], "style-src": [UNSAFE_INLINE], "worker-src": [SELF, BLOB]})(
            OfflineRedocView.as_view(url_name="api:schema", template_name="api/redoc.html")
        ),
        name="redoc",
    ),
    path("redoc/redoc.standalone.js", redoc_bundle, name="redoc-bundle"),
]
