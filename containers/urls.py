from django.urls import path

from . import deployment_views, views

urlpatterns = [
    path(
        "containers/<int:pk>/routes/<int:route_id>/access/",
        views.route_access,
        name="container-route-access",
    ),
    path("", views.dashboard, name="dashboard"),
    path("containers/new/", views.container_create, name="container-create"),
    path("containers/check-hostname", views.hostname_check, name="hostname-check"),
    path("containers/<int:pk>/", views.container_detail, name="container-detail"),
    path(
        "containers/<int:pk>/collaborators/add/",
        views.collaborator_add,
        name="container-collaborator-add",
    ),
    path(
        "containers/<int:pk>/collaborators/remove/",
        views.collaborator_remove,
        name="container-collaborator-remove",
    ),
    path(
        "containers/<int:pk>/failed/<slug:action>/",
        views.failed_create_action,
        name="failed-create-action",
    ),
    path("containers/<int:pk>/<slug:action>/", views.container_action, name="container-action"),
    path("deployments/", deployment_views.deployment_list, name="deployment-list"),
    path(
        "deployments/<slug:name>/",
        deployment_views.deployment_detail,
        name="deployment-detail",
    ),
    path(
        "deployments/<slug:name>/extend/",
        deployment_views.deployment_extend,
        name="deployment-extend",
    ),
    path(
        "deployments/<slug:name>/destroy/",
        deployment_views.deployment_destroy,
        name="deployment-destroy",
    ),
]
