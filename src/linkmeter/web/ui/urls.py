"""UI routes: home, links, batches, batch, link and providers pages, and the htmx partials they refresh."""

from django.urls import URLPattern, URLResolver, path

from linkmeter.web.ui import listviews, views

app_name = "ui"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    path("links/", listviews.links, name="links"),
    path("batches/", listviews.batches, name="batches"),
    path("batches/<int:batch_id>/", views.batch, name="batch"),
    path("batches/<int:batch_id>/progress/", views.batch_progress, name="batch-progress"),
    path("batches/<int:batch_id>/table/", views.batch_table, name="batch-table"),
    path("links/<int:link_id>/", views.link, name="link"),
    path("links/<int:link_id>/reanalyse/", views.reanalyse, name="reanalyse"),
    path("links/<int:link_id>/feedback/", views.feedback, name="feedback"),
    path("analyses/<int:analysis_id>/raw/<str:provider>/", views.raw_response, name="raw"),
    path("spam/", views.spam_models, name="spam"),
    path("spam/<str:action>/", views.spam_action, name="spam-action"),
    path("providers/", views.providers, name="providers"),
    path("usage/", views.usage, name="usage"),
    path("providers/table/", views.providers_table, name="providers-table"),
]
