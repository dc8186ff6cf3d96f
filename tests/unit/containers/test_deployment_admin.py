"""Deployments in the admin: listed and shown with the env's names, never its values;
removed and extended only through the services."""

from __future__ import annotations

import pytest
from django.test import Client

from containers.deployments import deployment_put
from containers.models import Container, ContainerStatus, Deployment, Job, JobStatus
from tests.factories import UserFactory, make_site
from tests.unit.containers.test_deployments import APP, SHA, archive

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_admin_shows_env_names_only_and_acts_through_services(no_jobs: None) -> None:
    site = make_site(None)
    owner = UserFactory(username="jo")
    made = deployment_put(
        actor=owner,
        repository="acme/shop",
        ref="main",
        commit=SHA,
        template=site.templates.get(),
        source=archive(),
        app=APP,
        env={"API_TOKEN": "tok-abcdef-secret"},
    )
    Job.objects.update(status=JobStatus.SUCCEEDED)
    Container.objects.update(status=ContainerStatus.RUNNING)
    admin = Client()
    admin.force_login(UserFactory(username="op", is_staff=True, is_superuser=True))
    listed = admin.get("/admin/containers/deployment/")
    assert listed.status_code == 200 and b"acme-shop-main" in listed.content
    page = admin.get(f"/admin/containers/deployment/{made.deployment.pk}/change/")
    assert page.status_code == 200
    assert b"API_TOKEN" in page.content and b"tok-abcdef-secret" not in page.content
    admin.post(
        "/admin/containers/deployment/",
        {"action": "extend_week", "_selected_action": [made.deployment.pk]},
    )
    assert Deployment.objects.get().expires_at is not None
    admin.post(
        "/admin/containers/deployment/",
        {"action": "destroy", "_selected_action": [made.deployment.pk]},
    )
    assert Deployment.objects.get().state == "removing"
    assert Job.objects.filter(kind="delete").count() == 1
