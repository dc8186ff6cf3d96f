"""Adding a collaborator tells an owner no more about who exists than the directory shows.

An unknown name, a disabled account and an account the directory does not have (a local
break-glass operator) get one answer: the same status, code and message. Checks that do
not depend on the name (the container's state, a job in progress) come first, so they
cannot be used to tell names apart either. A real user is still added.

The cases against a real directory (slapd); the others, and the helpers, are in
tests/unit/accounts/test_collaborator_privacy.py.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from auth.models import Collaborator
from containers import collaborators
from tests.factories import UserFactory
from tests.unit.accounts.test_collaborator_privacy import _post, owned, refusal

__all__ = ["owned"]  # the fixture, shared

pytestmark = pytest.mark.django_db


@pytest.mark.ldap
def test_with_a_directory_only_its_people_can_be_added(ldap_settings, owned) -> None:
    owner, c = owned
    User.objects.create_user("root-ops", password="local-secret", is_staff=True)  # local only
    unknown = refusal(c, owner, "nobody")
    assert refusal(c, owner, "root-ops") == unknown
    # Someone the directory has, never logged in to the portal: found and added.
    assert not User.objects.filter(username="gina").exists()
    collaborators.collaborator_add(container=c, username="gina", actor=owner)
    assert Collaborator.objects.filter(container=c, user__username="gina").exists()


@pytest.mark.ldap
def test_a_directory_that_is_down_gives_one_answer_for_every_name(ldap_settings, owned) -> None:
    from portal.procs import free_port

    owner, c = owned
    UserFactory(username="carol")
    ldap_settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{free_port()}"
    answers = {refusal(c, owner, name) for name in ("carol", "nobody")}
    assert len(answers) == 1 and next(iter(answers))[2] == "directory_unavailable"


@pytest.mark.ldap
def test_the_api_documents_a_directory_that_is_down(ldap_settings, owned) -> None:
    from portal.procs import free_port
    from tests.api_contract import check

    owner, c = owned
    ldap_settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{free_port()}"
    client = Client()
    client.force_login(owner)
    response = check(_post(client, c, "carol"))
    assert response.status_code == 503 and response.json()["code"] == "directory_unavailable"
