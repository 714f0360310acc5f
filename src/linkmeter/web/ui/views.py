"""The UI's pages and htmx partials: thin, the logic is in services, selectors and the forms."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from linkmeter.providers.registry import DEFAULT_NAMES
from linkmeter.web.jobs.health import disabled_providers, engine_view
from linkmeter.web.links.models import Batch, FeedbackLabel, FeedbackSource, SpamJobKind
from linkmeter.web.links.selectors import owned, progress, tables
from linkmeter.web.links.selectors import spam as spam_selectors
from linkmeter.web.links.selectors.deferred import deferred_estimates
from linkmeter.web.links.selectors.details import latest_analysis, link_history, numeric_series
from linkmeter.web.links.selectors.health import provider_health
from linkmeter.web.links.services import spam_learning
from linkmeter.web.links.services.errors import ServiceError
from linkmeter.web.links.services.feedback import feedback_create, labeller_of
from linkmeter.web.plans.selectors.plans import plan_for
from linkmeter.web.plans.selectors.usage import account_usage
from linkmeter.web.plans.services.submission import plan_submission_submit
from linkmeter.web.ui import csvimport, display, usagechart
from linkmeter.web.ui.forms import PendingCsv, SubmitForm, TableQuery

PAGE_SIZE = 100
PENDING_CSV = "ui_pending_csv"  # session key: an upload waiting for its URL column to be chosen
LINE_NUMBERS = "ui_line_numbers"  # session key: per batch, the input line of each rejected item
KEEP_LINE_NUMBERS = 20  # batches whose line numbers the session remembers


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        request.session.pop(PENDING_CSV, None)
        return _home(request, SubmitForm())
    form = SubmitForm(request.POST, request.FILES, pending=PendingCsv.from_dict(request.session.get(PENDING_CSV)))
    if not form.is_valid():
        _remember_pending(request, form.pending)
        return _home(request, form)
    lines: list[tuple[int, str]] = form.cleaned_data["lines"]
    providers = form.cleaned_data["providers"]
    try:
        submission = plan_submission_submit(
            user=request.user, plan=plan_for(request.user), urls=[text for _, text in lines],
            providers=[] if set(providers) == set(DEFAULT_NAMES) else providers,  # []: the default set
            fresh=form.cleaned_data["fresh"], name=form.cleaned_data["name"],
            source=form.cleaned_data["source"]).submission
    except ServiceError as exc:
        invalid = exc.details if exc.code == "no_valid_urls" else []
        form.add_error(None, exc.message)
        return _home(request, form, invalid=_numbered(invalid, [n for n, _ in lines]))
    request.session.pop(PENDING_CSV, None)
    _remember_lines(request, submission.batch.pk, [lines[item.index][0] for item in submission.invalid],
                    [item.index for item in submission.invalid])
    return redirect("ui:batch", batch_id=submission.batch.pk)


def _home(request: HttpRequest, form: SubmitForm, *, invalid: list[dict[str, Any]] | None = None) -> HttpResponse:
    """The form, with its errors when it comes back (200, as Django forms do: the page itself is fine)."""
    columns = None
    if form.needs_column is not None:
        table = form.needs_column
        preferred = table.candidates[0] if table.candidates else 0
        columns = [{"number": i + 1, "label": label, "sample": table.samples(i), "selected": i == preferred}
                   for i, label in enumerate(table.columns)]
    selected = request.POST.getlist("providers") if form.is_bound else None
    return render(request, "ui/home.html", {
        "form": form, "invalid": invalid or [], "columns": columns, "pending": form.pending,
        "provider_groups": display.provider_choices(selected, disabled_providers()),
        "recent": progress.recent_batches(request.user, limit=10),
        "max_urls": settings.LINKMETER["MAX_URLS_PER_REQUEST"],
        "max_rows": settings.LINKMETER["UPLOAD_MAX_ROWS"],
        "max_size": csvimport.human_size(settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
    })


def _remember_pending(request: HttpRequest, pending: PendingCsv | None) -> None:
    if pending is None:
        request.session.pop(PENDING_CSV, None)
    else:
        request.session[PENDING_CSV] = pending.as_dict()


def _remember_lines(request: HttpRequest, batch_id: int, lines: list[int], indexes: list[int]) -> None:
    if not lines:
        return
    remembered = dict(request.session.get(LINE_NUMBERS, {}))
    remembered[str(batch_id)] = {str(index): line for index, line in zip(indexes, lines, strict=True)}
    request.session[LINE_NUMBERS] = dict(sorted(remembered.items(), key=lambda kv: int(kv[0]))[-KEEP_LINE_NUMBERS:])


def _numbered(invalid: Any, line_numbers: list[int] | dict[str, int]) -> list[dict[str, Any]]:
    """Rejected items with the input line they came from (when known) instead of their index."""
    rows = []
    for item in invalid if isinstance(invalid, list) else []:
        index = int(item.get("index", 0))
        if isinstance(line_numbers, list):
            line = line_numbers[index] if 0 <= index < len(line_numbers) else None
        else:
            line = line_numbers.get(str(index))
        rows.append({"line": line, "item": index + 1, "input": item.get("input", ""),
                     "code": item.get("code", ""), "message": item.get("message", "")})
    return rows


@require_GET
def batch(request: HttpRequest, batch_id: int) -> HttpResponse:
    found = get_object_or_404(owned.batches(request.user), pk=batch_id)
    query = TableQuery(request.GET)
    lines = request.session.get(LINE_NUMBERS, {}).get(str(found.pk), {})
    context = {
        "batch": found,
        "batch_providers": found.providers or DEFAULT_NAMES,
        **_progress(found),
        "invalid": _numbered(found.invalid, lines),
        "query": query,
        "exports": [(fmt.upper(), f"/api/v1/batches/{found.pk}/results?format={fmt}", f"batch-{found.pk}.{fmt}")
                    for fmt in ("csv", "ndjson", "json")],
        **_table_context(found, query),
    }
    return render(request, "ui/batch.html", context)


@require_GET
def batch_progress(request: HttpRequest, batch_id: int) -> HttpResponse:
    found = get_object_or_404(owned.batches(request.user), pk=batch_id)
    return render(request, "ui/_batch_progress.html", {"batch": found, **_progress(found)})


def _progress(batch: Batch) -> dict[str, Any]:
    shown = progress.batch_progress(batch)
    # rounded down: 199 of 200 is not "100 %"
    return {"progress": shown, "percent": math.floor(shown.progress * 100)}


@require_GET
def batch_table(request: HttpRequest, batch_id: int) -> HttpResponse:
    found = get_object_or_404(owned.batches(request.user), pk=batch_id)
    return render(request, "ui/_batch_table.html", {"batch": found, **_table_context(found, TableQuery(request.GET))})


def _table_context(batch: Batch, query: TableQuery) -> dict[str, Any]:
    finished = batch.finished_at is not None  # read before the rows: a finished batch's rows are final
    options = query.options()
    page_number = query.page_number()
    table = tables.batch_table(batch, **options, offset=(page_number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, math.ceil(table.matching / PAGE_SIZE))
    params = {k: v for k, v in query.data.items() if k != "page" and v not in ("", None)}
    sort, descending = options["sort"], options["descending"]
    columns = display.main_columns(batch.providers)

    def sort_link(signal: str) -> str:
        order = "asc" if signal == sort and descending else "desc"
        return "?" + urlencode({**params, "sort": signal, "order": order})

    return {
        "finished": finished,
        "table": table,
        "rows": [display.table_row(row, columns) for row in table.rows],
        "columns": [{"signal": s, "heading": h, "link": sort_link(s), "sorted": s == sort,
                     "descending": descending} for s, h in columns],
        "http_sort_link": sort_link("page.status"),
        "http_sorted": sort == "page.status",
        "descending": descending,
        "page": page_number,
        "pages": pages,
        "previous_page": "?" + urlencode({**params, "page": page_number - 1}) if page_number > 1 else None,
        "next_page": "?" + urlencode({**params, "page": page_number + 1}) if page_number < pages else None,
        "table_query": urlencode({**params, "page": page_number}),
    }


@require_GET
def link(request: HttpRequest, link_id: int) -> HttpResponse:
    found = get_object_or_404(owned.links(request.user), pk=link_id)
    latest = latest_analysis(found, request.user)  # this account's: another's newer one stays unseen
    history = link_history(found, request.user)
    series = numeric_series(history)
    results = list(tables.provider_results(latest)) if latest else []
    estimates = deferred_estimates(results)
    providers = [{"result": r, "provider": r.provider, "style": display.STATUS_STYLES.get(r.status, "secondary"),
                  "signals": display.signal_cells(r.signals), "estimate": estimates.get(r.pk)}
                 for r in results]
    groups = display.grouped(providers, lambda item: display.PROVIDER_GROUP.get(str(item["provider"]), "other"))
    return render(request, "ui/link.html", {
        "link": found,
        "latest": latest,
        "page_title": latest.signals.get("page.title") if latest else None,
        "latest_style": display.STATUS_STYLES.get(latest.status, "secondary") if latest else "secondary",
        "pending": tables.link_pending_analysis(found, request.user),
        "provider_groups": groups,
        "history_count": len(history),
        "chart_data": {"series": series, "labels": display.chart_labels(sorted(series))},
        "labels": FeedbackLabel,
        "verdict": spam_selectors.verdict_of(latest.signals) if latest else None,
        "current_label": spam_selectors.current_label(found.pk, labeller_of(request.user)),
    })


@require_GET
def raw_response(request: HttpRequest, analysis_id: int, provider: str) -> HttpResponse:
    get_object_or_404(owned.analyses(request.user), pk=analysis_id)
    result = tables.provider_result(analysis_id=analysis_id, provider=provider)
    if result is None:
        return HttpResponse(status=404)
    return render(request, "ui/_raw.html", {"result": result, "raw": display.raw_text(result.raw)})


@require_POST
def reanalyse(request: HttpRequest, link_id: int) -> HttpResponse:
    found = get_object_or_404(owned.links(request.user), pk=link_id)
    latest = latest_analysis(found, request.user)
    try:  # the same providers as the latest analysis (pagespeed stays in when it was asked for)
        submission = plan_submission_submit(user=request.user, plan=plan_for(request.user), urls=[found.url],
                                            providers=latest.providers if latest else [],
                                            fresh=True).submission
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("ui:link", link_id=found.pk)
    messages.info(request, "Analysing the link again.")
    return redirect("ui:batch", batch_id=submission.batch.pk)


@require_POST
def feedback(request: HttpRequest, link_id: int) -> HttpResponse:
    found = get_object_or_404(owned.links(request.user), pk=link_id)
    try:
        created = feedback_create(link=found, label=request.POST.get("label", ""), user=request.user,
                                  source=FeedbackSource.UI, analysis=latest_analysis(found, request.user))
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        shown = "spam" if created.label == FeedbackLabel.SPAM else "not spam"
        messages.success(request, f"Thank you: this link is recorded as {shown}.")
    return HttpResponseRedirect(reverse("ui:link", args=[found.pk]) + "#feedback")


@require_GET
def spam_models(request: HttpRequest) -> HttpResponse:
    active = spam_learning.spam_model_active()
    return render(request, "ui/spam.html", {
        "active": spam_selectors.model_summary(active), "models": spam_selectors.models_list(),
        "labels": spam_selectors.label_counts(), "jobs": spam_selectors.jobs_recent(),
        "roc": spam_selectors.roc_curve(),
    })


@require_POST
def spam_action(request: HttpRequest, action: str) -> HttpResponse:
    try:
        if action == "train":
            spam_learning.job_start(kind=SpamJobKind.TRAIN, trigger="demand")
            messages.info(request, "Training a candidate in the background.")
        elif action == "promote":
            version = int(request.POST.get("version", "0") or 0)
            spam_learning.spam_model_promote(version=version)
            messages.success(request, f"Version {version} is active; stored links are being re-scored.")
        elif action == "rollback":
            row = spam_learning.spam_model_rollback()
            messages.success(request, f"Version {row.version} is active again; stored links are being re-scored.")
        else:
            return HttpResponse(status=404)
    except (ServiceError, ValueError) as exc:
        messages.error(request, exc.message if isinstance(exc, ServiceError) else "no such version")
    return redirect("ui:spam")


async def providers(request: HttpRequest) -> HttpResponse:
    return await _providers(request, "ui/providers.html")


async def providers_table(request: HttpRequest) -> HttpResponse:
    return await _providers(request, "ui/_providers_table.html")


async def _providers(request: HttpRequest, template: str) -> HttpResponse:
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET"})
    view = await engine_view()

    def page() -> HttpResponse:  # the ORM and the session (messages) are synchronous
        health = provider_health(disabled=view.disabled, breakers=view.breakers, caches=view.caches,
                                 keys_set=view.keys_set, budgets=view.budgets)
        rows = [display.provider_row(item) for item in health]
        return render(request, template, {"groups": display.grouped(rows, lambda row: row.health.group),
                                          "styles": display.STATUS_STYLES})

    return await sync_to_async(page)()


@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    """The account's plan, quotas and last 30 days as a chart (what GET /api/v1/usage answers)."""
    plan = plan_for(request.user)
    if not request.user.is_authenticated:
        return render(request, "ui/usage.html", {"plan": plan, "usage": None})
    data = account_usage(request.user.pk, plan)
    data["account"] = {"id": request.user.pk, "username": request.user.get_username()}
    data["rate_limits"] = [{"name": w.name, "limit": w.limit} for w in plan.rate_windows]
    return render(request, "ui/usage.html", {
        "plan": plan, "usage": data, "bars": usagechart.bars(data["history"]),
        "width": usagechart.WIDTH, "height": usagechart.HEIGHT})
