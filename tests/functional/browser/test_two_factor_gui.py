"""Two-factor changes in real headless Chromium: a session alone cannot turn 2FA off; a
wrong code or password is shown at the field and changes nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from auth.models import AuthenticatorDevice
from tests.functional.browser.conftest import PASSWORD, log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("transactional_db", "local_login"),
]


def test_turning_2fa_off_asks_who_you_are(page: Any) -> None:
    make_user("fay")
    log_in(page, "fay")
    page.goto("/accounts/2fa/")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    secret = page.locator("code.secret").inner_text()
    page.get_by_label("Code from the app").fill(f"{TOTP(base64.b32decode(secret)).token():06d}")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("li code").first).to_be_visible()  # the recovery codes, once

    page.goto("/accounts/2fa/")
    page.get_by_label("Confirm it is you").fill("not-the-password")
    page.get_by_role("button", name="Turn two-factor authentication off").click()
    expect(page.locator("#proof-error")).to_contain_text("That is not right")
    assert AuthenticatorDevice.objects.filter(user__username="fay", confirmed=True).exists()
    # The key is not on the page any more (only during enrolment).
    assert secret not in page.content()

    page.get_by_label("Confirm it is you").fill(PASSWORD)
    page.get_by_role("button", name="Turn two-factor authentication off").click()
    expect(page.get_by_text("Two-factor authentication is off.").first).to_be_visible()
    assert not AuthenticatorDevice.objects.filter(user__username="fay").exists()
