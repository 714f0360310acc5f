"""Accounts routes under /accounts/: login, logout, password change, sign-up, API keys."""

from django.urls import URLPattern, URLResolver, path

from linkmeter.web.accounts import views

app_name = "accounts"

urlpatterns: list[URLPattern | URLResolver] = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password-change"),
    path("signup/", views.signup, name="signup"),
    path("keys/", views.keys, name="keys"),
    path("keys/<str:key_id>/revoke/", views.key_revoke, name="key-revoke"),
]
