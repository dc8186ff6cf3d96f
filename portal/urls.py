from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views.decorators.http import require_safe

from auth.views import admin_login as accounts_admin_login
from containers.monitoring import views as monitoring


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers (readiness, with its checks, is /readyz)."""
    return JsonResponse({"ok": True})


@require_safe
def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Pages without base.html's icon link (the admin, the API docs) get the same icon."""
    return HttpResponsePermanentRedirect(static("portal/favicon.svg"))


# Under /api/ these answer in the API's JSON error shape; elsewhere Django's HTML pages.
handler400 = "portal.api.exceptions.bad_request"
handler403 = "portal.api.exceptions.permission_denied"
handler404 = "portal.api.exceptions.page_not_found"
handler500 = "portal.api.exceptions.server_error"

urlpatterns = [
    # The admin logs in through the portal's login (LDAP, 2FA, lockout), not its own form.
    path("admin/login/", accounts_admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("accounts/", include("auth.urls")),
    path("api/v1/", include("portal.api.urls")),
    path("healthz", healthz, name="healthz"),
    path("readyz", monitoring.readyz, name="readyz"),
    path("metrics", monitoring.metrics, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
    path("gateway/", include("networking.urls")),  # NGINX auth_request for protected routes
    path("", include("containers.urls")),
]
