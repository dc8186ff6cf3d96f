"""A node's API token secret is encrypted at rest and never shown back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from networking.models import Node
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

SECRET = "5f0b3c1e-8d2a-4e6b-9c7d-secret-value"


def test_the_database_holds_only_ciphertext() -> None:
    site = make_site(None)
    node = site.nodes.get(name="pve1")
    node.token_secret = SECRET
    node.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT token_secret FROM networking_node WHERE id = %s", [node.pk])
        stored = cursor.fetchone()[0]
    assert SECRET not in stored and stored.startswith("gAAAA")  # a Fernet token
    assert Node.objects.get(pk=node.pk).token_secret == SECRET


def test_admin_pages_never_render_the_secret() -> None:
    site = make_site(None)
    node = site.nodes.get(name="pve1")
    node.token_secret = SECRET
    node.save()
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    for path in (
        "/admin/networking/node/",
        f"/admin/networking/node/{node.pk}/change/",
        f"/admin/networking/site/{site.pk}/change/",
        "/api/v1/nodes/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert SECRET not in response.content.decode(), path
