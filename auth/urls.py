from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("", views.account, name="account"),
    path("login/", views.login_view, name="login"),
    path("login/verify/", views.login_verify, name="login-verify"),
    path("logout/", views.logout_view, name="logout"),
    path("2fa/", views.two_factor, name="2fa"),
    path("2fa/enrol/", views.two_factor_enrol, name="2fa-enrol"),
    path("ssh-keys/", views.ssh_keys, name="ssh-keys"),
    path("ssh-keys/<int:pk>/remove/", views.ssh_key_remove, name="ssh-key-remove"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("requests/", views.resource_requests, name="requests"),
    path("notifications/", views.notification_settings, name="notifications"),
    path("requests/<int:pk>/cancel/", views.resource_request_cancel, name="request-cancel"),
]
