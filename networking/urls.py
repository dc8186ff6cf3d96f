from django.urls import path

from . import views

app_name = "gateway"

urlpatterns = [
    path("auth", views.gateway_auth, name="auth"),
    path("login", views.gateway_login, name="login"),
    path("session", views.gateway_session, name="session"),
]
