"""The Wazuh clients against the double over real HTTPS (its CA verified): login and JWT
renewal, the one re-login on a 401, paging, DELETE's `status` and `older_than` rules,
errors in the portal's hierarchy without secrets, and the indexer's alert searches."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import requests

from containers.wazuh.client import (
    IndexerClient,
    WazuhAuthFailed,
    WazuhClient,
    WazuhError,
    WazuhUnavailable,
)
from portal.errors import ErrorCode, UpstreamError, UpstreamUnavailable
from tests.fixtures.wazuh_double import (
    INDEXER_PASSWORD,
    INDEXER_USER,
    MANAGER_PASSWORD,
    MANAGER_USER,
    WazuhDouble,
)


def client(wazuh: WazuhDouble, **kwargs: Any) -> WazuhClient:
    kwargs.setdefault("verify", str(wazuh.ca_path))
    password = kwargs.pop("password", MANAGER_PASSWORD)
    return WazuhClient(wazuh.manager_url, MANAGER_USER, password, **kwargs)


def indexer(wazuh: WazuhDouble, password: str = INDEXER_PASSWORD) -> IndexerClient:
    return IndexerClient(wazuh.indexer_url, INDEXER_USER, password, verify=str(wazuh.ca_path))


def refused(wazuh: WazuhDouble) -> int:
    return sum(1 for c in wazuh.calls if c.service == "manager" and c.status == 401)


# -- login and tokens -------------------------------------------------------------------------
def test_one_login_serves_many_calls_and_an_expiring_token_is_renewed_before_it_is_refused(
    wazuh: WazuhDouble,
) -> None:
    wazuh.token_lifetime = 2
    api = client(wazuh)
    for _ in range(3):
        assert api.agents_summary()["total"] == 1  # the manager's own agent 000
    assert api.logins == 1
    old = api._token
    time.sleep(2.1)  # the token's exp has passed: the double refuses it now...
    answer = requests.get(
        f"{wazuh.manager_url}/agents/summary/status",
        headers={"Authorization": f"Bearer {old}"},
        verify=str(wazuh.ca_path),
        timeout=5,
    )
    assert answer.status_code == 401, answer.text
    assert refused(wazuh) == 1
    assert api.agents_summary()["active"] == 1  # ...and the client renewed it first
    assert api.logins == 2
    assert refused(wazuh) == 1
    assert wazuh.count("POST", "/security/user/authenticate") == 2


def test_a_token_refused_mid_run_is_replaced_once_and_the_call_repeated(wazuh: WazuhDouble) -> None:
    api = client(wazuh)
    wazuh.add_agent("local-101-1")
    assert len(api.agents()) == 2
    wazuh.revoke_tokens()  # the manager restarted: every token it gave is void
    assert [a["name"] for a in api.agents(name="local-101-1")] == ["local-101-1"]
    assert api.logins == 2
    assert refused(wazuh) == 1


def test_a_second_401_after_a_fresh_login_is_an_error_not_a_loop(wazuh: WazuhDouble) -> None:
    api = client(wazuh)
    api.login()
    wazuh.refuse_tokens = True
    with pytest.raises(WazuhAuthFailed) as caught:
        api.agents_summary()
    assert caught.value.code == ErrorCode.WAZUH_AUTH_FAILED
    assert api.logins == 2
    assert wazuh.count("GET", "/agents/summary/status") == 2


def test_a_wrong_password_is_a_clear_error_that_never_holds_it(wazuh: WazuhDouble) -> None:
    wrong = "not-the-Password-0451"
    api = client(wazuh, password=wrong)
    with pytest.raises(WazuhAuthFailed) as caught:
        api.agents()
    exc = caught.value
    assert isinstance(exc, UpstreamError) and not isinstance(exc, UpstreamUnavailable)
    assert "refused the API user 'wazuh-wui'" in exc.message
    for text in (exc.message, str(exc), repr(exc), repr(exc.extra), repr(api)):
        assert wrong not in text
        assert MANAGER_PASSWORD not in text
    assert wazuh.count("GET", "/agents") == 0


# -- agents -----------------------------------------------------------------------------------
def test_agents_are_read_page_by_page_until_the_total(wazuh: WazuhDouble) -> None:
    for i in range(1203):
        wazuh.add_agent(
            f"local-{1000 + i}-{i}", status="disconnected" if i % 100 == 0 else "active"
        )
    api = client(wazuh)
    found = api.agents()
    assert len(found) == 1204  # and agent 000
    assert len({a["id"] for a in found}) == 1204
    assert wazuh.count("GET", "/agents") == 3  # limit 500: 500 + 500 + 204
    offsets = [c.query["offset"] for c in wazuh.calls if c.path == "/agents"]
    assert offsets == ["0", "500", "1000"]

    small = client(wazuh, page_limit=100)
    disconnected = small.agents(status="disconnected", select=["name", "status", "lastKeepAlive"])
    assert len(disconnected) == 13
    assert all(set(a) == {"id", "name", "status", "lastKeepAlive"} for a in disconnected)
    assert wazuh.count("GET", "/agents") == 4  # 13 fit in one page of 100


def test_the_query_language_filters_on_the_manager_s_side(wazuh: WazuhDouble) -> None:
    now = wazuh.now()
    web = wazuh.add_agent("lyon-1001-1", group=["default", "web"])
    old = wazuh.add_agent(
        "lyon-1002-2", status="disconnected", last_keepalive=now - timedelta(days=3)
    )
    never = wazuh.add_agent("paris-1003-3", status="never_connected")
    node = wazuh.add_agent("pve1", group="hypervisors")
    api = client(wazuh, page_limit=2)

    def ids(q: str) -> list[str]:
        return [a["id"] for a in api.agents(q=q, select=["name"])]

    # The manager's own agent left out: ids compare as numbers, 000 is 0.
    assert ids("id!=000") == [web.id, old.id, never.id, node.id]
    assert [c.query["q"] for c in wazuh.calls if c.path == "/agents"] == ["id!=000"] * 2
    assert ids("id>1;id<004") == [old.id, never.id]
    # ; is AND, , is OR (AND binds tighter), parentheses group; text ignores case.
    assert ids("status=ACTIVE;name~lyon") == [web.id]
    assert ids("name~paris,status=active;group=web") == [web.id, never.id]
    assert ids("(name~paris,status=active);group!=web") == ["000", never.id, node.id]
    assert ids("group~hyper") == [node.id]
    assert ids("version=null") == [never.id]  # never connected: no version
    assert ids("lastKeepAlive>1d;id!=000") == [old.id]  # last seen more than a day ago
    assert ids("lastKeepAlive<1d;id!=000") == [web.id, node.id]
    assert ids("name=nobody") == []


@pytest.mark.parametrize(
    ("q", "code", "detail"),
    [
        ("id", 1407, "Query does not match expected format: id"),
        ("=000", 1407, "Query does not match expected format: =000"),
        ("id!=000;", 1407, "Query does not match expected format: id!=000;"),
        ("(id!=000", 1407, "Query does not match expected format: (id!=000"),
        ("nosuchfield=1", 1408, "Field does not exist."),
        (
            "id<=5",
            1409,
            "Invalid query operator: Valid operators: =, !=, <, >, ~. Used operator: <=",
        ),
        ("dateAdd<yesterday", 1412, "Date filter not valid."),
    ],
)
def test_a_malformed_query_is_wazuh_s_400(
    wazuh: WazuhDouble, q: str, code: int, detail: str
) -> None:
    api = client(wazuh)
    token = api.login()
    answer = requests.get(
        f"{wazuh.manager_url}/agents",
        params={"q": q},
        headers={"Authorization": f"Bearer {token}"},
        verify=str(wazuh.ca_path),
        timeout=5,
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    body = answer.json()
    assert (body["title"], body["error"]) == ("Bad Request", code)
    assert body["detail"].startswith(detail), body["detail"]
    with pytest.raises(WazuhError) as caught:  # the client: a refusal, not worth a retry
        api.agents(q=q)
    assert caught.value.status == 400 and detail in caught.value.message


def test_agent_by_name_and_the_summary(wazuh: WazuhDouble) -> None:
    wazuh.add_agent("local-101-1")
    made = wazuh.add_agent("local-102-2", status="never_connected")
    api = client(wazuh)
    agent = api.agent_by_name("local-102-2")
    assert agent is not None and agent["id"] == made.id and agent["status"] == "never_connected"
    assert "lastKeepAlive" not in agent  # never connected: no keep-alive, no version
    assert api.agent_by_name("local-999-9") is None
    assert api.agents_summary() == {
        "active": 2,
        "disconnected": 0,
        "never_connected": 1,
        "pending": 0,
        "total": 3,
    }


def test_delete_needs_status_and_spares_recent_agents_unless_older_than_is_zero(
    wazuh: WazuhDouble,
) -> None:
    fresh = wazuh.add_agent("local-101-1")
    stale = wazuh.add_agent(
        "local-102-2", status="never_connected", date_add=wazuh.now() - timedelta(days=8)
    )
    api = client(wazuh)

    with pytest.raises(WazuhError) as caught:  # no status: Wazuh refuses the call
        api.request("DELETE", "/agents", {"agents_list": fresh.id, "older_than": "0s"})
    assert caught.value.status == 400
    assert "Missing query parameter 'status'" in caught.value.message

    body = api.request(
        "DELETE", "/agents", {"agents_list": f"{fresh.id},{stale.id}", "status": "all"}
    )
    assert body["data"]["affected_items"] == [stale.id]  # older_than's default is 7d
    assert body["data"]["failed_items"][0]["id"] == [fresh.id]
    assert body["data"]["failed_items"][0]["error"]["code"] == 1731
    assert body["error"] == 2
    assert wazuh.agent_named("local-101-1") is not None

    result = api.delete_agents([fresh.id, "000", "077"])
    assert result.affected == [fresh.id]
    assert sorted(result.failed_ids) == ["000", "077"]
    assert {item["error"]["code"] for item in result.failed} == {1701, 1703}
    assert wazuh.agent_named("local-101-1") is None
    call = [c for c in wazuh.calls if c.method == "DELETE"][-1]
    assert (call.query["status"], call.query["older_than"]) == ("all", "0s")
    assert api.delete_agents([]).affected == []
    assert len([c for c in wazuh.calls if c.method == "DELETE"]) == 3


# -- errors -----------------------------------------------------------------------------------
def test_a_manager_that_is_down_or_failing_is_unavailable_worth_a_retry(wazuh: WazuhDouble) -> None:
    api = client(wazuh)
    api.login()
    wazuh.set_down()
    with pytest.raises(WazuhUnavailable) as caught:
        api.agents()
    exc = caught.value
    assert isinstance(exc, UpstreamUnavailable) and exc.http_status == 503
    assert exc.code == ErrorCode.WAZUH_UNAVAILABLE
    assert "cannot reach the Wazuh manager at 127.0.0.1:" in exc.message
    wazuh.set_down(False)
    wazuh.fail_next("GET", "/agents", 503)
    with pytest.raises(WazuhUnavailable) as caught:
        api.agents()
    assert caught.value.status == 503
    assert len(api.agents()) == 1  # back


def test_a_certificate_the_ca_bundle_does_not_vouch_for_is_refused(wazuh: WazuhDouble) -> None:
    api = client(wazuh, verify=True)  # the system's CAs: they never signed the double's
    with pytest.raises(WazuhError) as caught:
        api.agents_summary()
    assert not isinstance(caught.value, UpstreamUnavailable)
    assert "TLS verification of the Wazuh manager" in caught.value.message
    assert wazuh.count() == 0


# -- the indexer ------------------------------------------------------------------------------
def test_a_container_s_alerts_newest_first_paged_and_filtered(wazuh: WazuhDouble) -> None:
    now = wazuh.now()
    for minutes, level, text in [
        (30, 3, "login"),
        (20, 10, "rootcheck"),
        (10, 5, "sshd"),
        (5, 7, "sudo"),
    ]:
        wazuh.seed_alert("local-101-1", level, text, timestamp=now - timedelta(minutes=minutes))
    wazuh.seed_alert("local-102-2", 12, "someone else's", labels={"group": "web"})
    search = indexer(wazuh)

    first = search.alerts("local-101-1", size=2)
    assert first.total == 4
    assert [a.description for a in first.alerts] == ["sudo", "sshd"]
    assert first.alerts[0].time is not None
    assert abs((first.alerts[0].time - (now - timedelta(minutes=5))).total_seconds()) < 0.01
    assert first.alerts[0].rule_groups == ["syslog", "sshd"]
    second = search.alerts("local-101-1", size=2, from_=2)
    assert [a.description for a in second.alerts] == ["rootcheck", "login"]
    assert [a.level for a in search.alerts("local-101-1", min_level=6).alerts] == [7, 10]

    top = search.site_top_alerts(min_level=7, size=10)
    assert [(a.level, a.agent_name) for a in top.alerts] == [
        (12, "local-102-2"),
        (10, "local-101-1"),
        (7, "local-101-1"),
    ]
    assert top.alerts[0].agent_labels == {"group": "web"}
    only = search.site_top_alerts(min_level=0, agent_names=["local-102-2"])
    assert [a.description for a in only.alerts] == ["someone else's"]
    assert wazuh.count("POST", "/wazuh-alerts-*/_search", service="indexer") == 5


def test_the_indexer_s_errors_are_the_portal_s_and_hold_no_password(wazuh: WazuhDouble) -> None:
    wrong = "indexer-Wrong-pass-77"
    with pytest.raises(WazuhAuthFailed) as caught:
        indexer(wazuh, wrong).alerts("local-101-1")
    assert caught.value.service == "indexer"
    assert wrong not in str(caught.value) and INDEXER_PASSWORD not in str(caught.value)
    wazuh.set_down()
    with pytest.raises(WazuhUnavailable) as down:
        indexer(wazuh).alerts("local-101-1")
    assert "cannot reach the Wazuh indexer" in down.value.message
