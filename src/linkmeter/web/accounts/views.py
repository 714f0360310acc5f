"""The accounts pages: log in and out, change password, sign up (when open), and the API keys page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_http_methods, require_POST

from linkmeter.web.accounts import mode, selectors, services
from linkmeter.web.accounts.authn import expiry_in, verifier
from linkmeter.web.accounts.forms import KeyForm, SignupForm
from linkmeter.web.accounts.middleware import client_address
from linkmeter.web.links.services.errors import ServiceError


class LoginView(auth_views.LoginView):
    """Django's login, with failed logins counted per client address as bad API keys are (every web process
    together, through Redis when it is set): a blocked address gets 429 and its password is not checked."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def dispatch(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
        if mode.current() is mode.AuthMode.LOCAL:
            return redirect("ui:home")  # local mode: nobody logs in
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = verifier().failures.retry_after(client_address(request))
        if wait is not None:
            return self._blocked(wait)
        answer: HttpResponse = super().post(request, *args, **kwargs)
        return answer

    def form_invalid(self, form: Any) -> HttpResponse:
        over = verifier().failures.failed(client_address(self.request))
        return self._blocked(over) if over is not None else super().form_invalid(form)

    def _blocked(self, wait: int) -> HttpResponse:
        form = self.get_form_class()(self.request)  # unbound: validating it would check the password
        message = f"Too many failed logins from this address; try again in {wait} s."
        response = self.render_to_response(self.get_context_data(form=form, blocked=message), status=429)
        response["Retry-After"] = str(wait)
        return response

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        return {**super().get_context_data(**kwargs), "signup_open": settings.ACCOUNTS["SIGNUP_OPEN"]}


class LogoutView(auth_views.LogoutView):  # POST only (Django's default since 5.0)
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("ui:home")

    def form_valid(self, form: object) -> HttpResponse:
        response = super().form_valid(form)  # type: ignore[arg-type]
        messages.success(self.request, "Your password has been changed.")
        return response


def _user(request: HttpRequest) -> User:
    if not isinstance(request.user, User):
        raise Http404
    return request.user


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if not settings.ACCOUNTS["SIGNUP_OPEN"] or mode.current() is mode.AuthMode.LOCAL:
        raise Http404("sign-up is off")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}.")
        return redirect("ui:home")
    return render(request, "accounts/signup.html", {"form": form})


@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = KeyForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            key, full = services.key_create(user=user, name=form.cleaned_data["name"],
                                            scopes=form.cleaned_data["scopes"],
                                            expires_at=expiry_in(form.cleaned_data.get("expires_in_days")))
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            created = {"key": full, "id": key.id_public, "name": key.name}  # shown this once, never again
            form = KeyForm()
    response = render(request, "accounts/keys.html", {
        "form": form, "created": created, "keys": [selectors.key_row(k) for k in selectors.keys_of(user)],
    })
    response["Cache-Control"] = "no-store"  # the page showing a new key must not be kept by the browser
    return response


@require_POST
def key_revoke(request: HttpRequest, key_id: str) -> HttpResponse:
    try:
        key = services.key_for_user(user=_user(request), key_id=key_id)
    except ServiceError as exc:
        raise Http404(exc.message) from exc
    services.key_revoke(key=key)
    messages.success(request, f"Key {key.id_public} ({key.name}) is revoked.")
    return redirect("accounts:keys")
