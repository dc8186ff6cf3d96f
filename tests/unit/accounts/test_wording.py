"""No internals in what users read (issue #12, item 10): no setting or field names, no
row numbers, no operator commands; one quota statement for those quotas do not limit;
the admin's help texts and names as written."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.utils.html import escape

from auth import quota_overrides
from auth.models import QUOTA_FIELDS, GroupPolicy, QuotaOverride
from containers import resource_requests, services
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

# What leaks internals: a setting or environment variable (AUTH_LDAP_SERVER_URI), a limit's
# field name (max_containers), a row number (quota override #1), an operator's command.
SETTING = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")
INTERNAL = re.compile(
    r"\bmax_[a-z_]+|override #\d|\bjob \d+\b|manage\.py|axes_reset|" + SETTING.pattern
)


def text_of(html: str) -> str:
    """What a reader sees: the page without its tags, attributes, scripts and forms' tokens."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def site() -> Any:
    return make_site(None)


def running(owner: Any, site: Any, hostname: str, **size: Any) -> Any:
    job = services.container_create(
        owner=owner, hostname=hostname, template=site.templates.get(), **size
    )
    services.container_set_status(container=job.container, to="provisioning")
    services.container_set_status(container=job.container, to="running")
    job.status = "succeeded"
    job.save(update_fields=["status"])
    return job.container


# -- the lockout page ------------------------------------------------------------------------------
def test_the_lockout_page_names_no_operator_command(settings: Any) -> None:
    settings.LOCAL_LOGIN_FOR_USERS = True
    settings.AXES_FAILURE_LIMIT = 2
    UserFactory(username="lou").set_password("right-password")
    client = Client(REMOTE_ADDR="198.51.100.9")
    for _ in range(2):
        response = client.post("/accounts/login/", {"username": "lou", "password": "guess"})
    assert response.status_code == 429
    page = text_of(response.content.decode())
    assert "Too many failed logins" in page and "ask" in page
    assert INTERNAL.findall(page) == [], page


# -- quotas ----------------------------------------------------------------------------------------
def test_an_override_is_named_in_words_where_users_see_it(site: Any) -> None:
    GroupPolicy.objects.create(group=None, max_containers=1)
    owner = UserFactory(username="olga")
    staff = UserFactory(username="stan", is_staff=True)
    override = quota_overrides.quota_override_create(
        user=owner, actor=staff, reason="course", limits={"max_containers": 2}
    )
    label = f"extra quota granted {override.created_at:%Y-%m-%d}"
    assert override.label == label
    page = text_of(client_for(owner).get("/containers/new/").content.decode())
    assert f"({label})" in page
    assert INTERNAL.findall(page) == [], page
    account = text_of(client_for(owner).get("/accounts/").content.decode())
    assert label in account and INTERNAL.findall(account) == []
    # The refusal names it the same way.
    running(owner, site, "one")
    running(owner, site, "two")
    response = client_for(owner).post(
        "/containers/new/", {"template": site.templates.get().pk, "hostname": "three"}
    )
    assert f"allowed by {label}" in response.content.decode()
    QuotaOverride.objects.filter(pk=override.pk).update(expires_at=override.created_at)
    override.refresh_from_db()
    assert override.label == f"{label}, until {override.created_at:%Y-%m-%d}"


def test_requests_and_their_outcomes_are_in_words(site: Any) -> None:
    owner = UserFactory(username="rita")
    staff = UserFactory(username="stan", is_staff=True)
    row = resource_requests.resource_request_create(
        user=owner,
        kind="quota",
        reason="for a course on databases",
        limits={"max_container_memory_mib": 4096, "max_containers": 8, "max_cores": 6},
    )
    page = text_of(client_for(owner).get("/accounts/requests/").content.decode())
    for phrase in ("containers 8", "cores 6 in total", "memory 4096 MiB per container"):
        assert phrase in page
    assert INTERNAL.findall(page) == [], page
    resource_requests.resource_request_approve(request=row, actor=staff)
    row.refresh_from_db()
    assert row.outcome == (
        "approved: your quota now allows containers 8, cores 6 in total, "
        "memory 4096 MiB per container"
    )

    # A bigger container: the quota raised to fit, and the resize, without numbers of rows.
    GroupPolicy.objects.create(group=None, max_container_cores=1)
    c = running(owner, site, "grow")
    resize = resource_requests.resource_request_create(
        user=owner, kind="resize", container=c, cores=2, reason="it is too slow to build"
    )
    resource_requests.resource_request_approve(request=resize, actor=staff)
    resize.refresh_from_db()
    assert resize.outcome == (
        "approved: your quota now allows cores 2 per container; grow is being resized"
    )
    page = text_of(client_for(owner).get("/accounts/requests/").content.decode())
    assert INTERNAL.findall(page) == [], page


def test_those_quotas_do_not_limit_see_one_statement(site: Any) -> None:
    GroupPolicy.objects.create(group=None, max_containers=5, max_cores=8)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    running(root, site, "mine")
    client = client_for(root)
    html = client.get("/containers/new/").content.decode()
    assert "(your account is not limited)" in html
    rows = dict(re.findall(r'<th scope="row">([^<]+)</th>(.*?)</tr>', html))
    assert re.sub(r"<[^>]+>", "|", rows["Containers"]) == "|1||no limit||—||—|"
    assert "5" not in rows["Containers"] and "8" not in rows["Cores"]

    account = client.get("/accounts/").content.decode()
    assert text_of(account).count("not limited") == 1
    assert "Allowed" not in account and "the default policy" not in account

    quota = client.get("/api/v1/me/").json()["quota"]
    assert quota["exempt"] is True
    assert {lim["value"] for lim in quota["limits"].values()} == {None}
    assert set(quota["remaining"].values()) == {None}
    assert set(quota["limits"]) == set(QUOTA_FIELDS)


# -- the admin -------------------------------------------------------------------------------------
# Derived names lose an acronym's or a unit's case ("Api tokens", "Max memory mib").
LOST_CASE = re.compile(r"\b(Api|Ssh|Tls|Ip|Cpu|Dhcp|Dns|Url|Mib|Gib|Vmid|Ldap|Totp|Id|Ca)\b")


@pytest.fixture
def operator_client() -> Client:
    return client_for(UserFactory(username="admin", is_staff=True, is_superuser=True))


def labels(html: str) -> list[str]:
    """Field labels, column headings, the site's and the models' names."""
    found = re.findall(r"<label[^>]*>([^<]+)</label>", html)
    found += re.findall(r'<th scope="col"[^>]*>.*?<(?:a|span)[^>]*>([^<]+)</', html, re.S)
    found += re.findall(r"<(?:h1|h2|caption|title)[^>]*>(.*?)</", html, re.S)
    found += re.findall(r'<th scope="row"[^>]*><a [^>]*>([^<]+)</a>', html)
    return [re.sub(r"\s+", " ", s).strip() for s in found]


def test_admin_names_keep_their_case(operator_client: Client) -> None:
    index = operator_client.get("/admin/").content.decode()
    assert "Cluster Portal administration" in index and "Django administration" not in index
    for name in ("API tokens", "SSH keys", "Authenticator apps (TOTP)"):
        assert f">{name}</a>" in index
    node = labels(operator_client.get("/admin/networking/node/add/").content.decode())
    for name in ("API URL:", "IP:", "Token ID:", "CA bundle:", "TLS fingerprint:", "Verify TLS"):
        assert name in node
    seen = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ("accounts", "containers", "networking"):
            continue
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        pages = [base] + ([f"{base}add/"] if model_admin.has_add_permission(_request()) else [])
        for url in pages:
            response = operator_client.get(url)
            assert response.status_code == 200, url
            found = [s for s in labels(response.content.decode()) if LOST_CASE.search(s)]
            assert found == [], (url, found)
            seen.append(url)
    assert len(seen) > 20


def _request() -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = UserFactory(username="admin", is_staff=True, is_superuser=True)
    return request


def test_admin_help_texts_keep_their_placeholders(operator_client: Client) -> None:
    site_page = operator_client.get("/admin/networking/site/add/").content.decode()
    assert "containers live at &lt;hostname&gt;.&lt;domain&gt;." in site_page
    node_page = operator_client.get("/admin/networking/node/add/").content.decode()
    assert "published as &lt;name&gt;.&lt;internal domain&gt;." in node_page
    # Every help text that holds an angle bracket, wherever its admin form shows it.
    for model, model_admin in admin.site._registry.items():
        texts = [f.help_text for f in model._meta.fields if "<" in str(f.help_text)]
        if not texts or not model_admin.has_add_permission(_request()):
            continue
        page = operator_client.get(
            f"/admin/{model._meta.app_label}/{model._meta.model_name}/add/"
        ).content.decode()
        for text in texts:
            if text.split("<")[0].strip() in page:
                assert escape(text) in page, text
