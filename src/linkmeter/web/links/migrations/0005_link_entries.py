"""Link entries (lists and search): the table, its column indexes, the signals' expression indexes (the same SQL
text the search emits, on both databases), a trigram index for text search on PostgreSQL, and the entries of
what was analysed before."""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Kept here as they were when this migration was written (signalsql.INDEXED_SIGNALS names the same).
SIGNALS = ("hackernews.points", "spam.score", "dnsbl.listed_count", "engagement.total", "authority.score",
           "tranco.rank", "rdap.domain_age_days", "page.status")
TABLE = "links_linkentry"
FINAL = ("done", "partial", "failed")


def create_signal_indexes(apps: Any, schema_editor: Any) -> None:
    from linkmeter.web.links.signalsql import SIGNAL_KINDS, create_index_sql

    vendor = schema_editor.connection.vendor
    for signal in SIGNALS:
        if signal in SIGNAL_KINDS:
            schema_editor.execute(create_index_sql(vendor, TABLE, signal))
    if vendor == "postgresql":
        # LIKE '%text%' on the lower-cased URL, title and domain; pg_trgm ships with PostgreSQL (contrib).
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS entry_search_trgm ON {TABLE} "
                              "USING gin (search_text gin_trgm_ops)")


def drop_signal_indexes(apps: Any, schema_editor: Any) -> None:
    from linkmeter.web.links.signalsql import index_name

    for signal in SIGNALS:
        schema_editor.execute(f"DROP INDEX IF EXISTS {index_name(signal)}")
    schema_editor.execute("DROP INDEX IF EXISTS entry_search_trgm")


def fill_entries(apps: Any, schema_editor: Any) -> None:
    """An entry per account and link from what exists (the services keep them from now on)."""
    Link = apps.get_model("links", "Link")
    BatchItem = apps.get_model("links", "BatchItem")
    Analysis = apps.get_model("links", "Analysis")
    ProviderResult = apps.get_model("links", "ProviderResult")
    LinkEntry = apps.get_model("links", "LinkEntry")
    last = 0
    while True:
        links = {link.pk: link for link in Link.objects.filter(pk__gt=last).order_by("pk")[:500]}
        if not links:
            return
        last = max(links)
        best: dict[tuple[Any, int], tuple[bool, int]] = {}
        for owner_id, link_id, analysis_id, status in (
                BatchItem.objects.filter(analysis__link_id__in=list(links))
                .values_list("batch__owner_id", "analysis__link_id", "analysis_id", "analysis__status")):
            rank = (status in FINAL, analysis_id)
            if best.get((owner_id, link_id), (False, 0)) < rank:
                best[(owner_id, link_id)] = rank
        chosen = {analysis_id for _, analysis_id in best.values()}
        analyses = {a.pk: a for a in Analysis.objects.filter(pk__in=chosen)}
        calls: dict[int, dict[str, str]] = {}
        for analysis_id, provider, status in (ProviderResult.objects.filter(analysis_id__in=chosen)
                                              .values_list("analysis_id", "provider", "status")):
            calls.setdefault(analysis_id, {})[provider] = status
        entries = []
        for (owner_id, link_id), (_, analysis_id) in best.items():
            analysis, link = analyses[analysis_id], links[link_id]
            final = analysis.status in FINAL
            signals = analysis.signals if final and isinstance(analysis.signals, dict) else {}
            title = signals.get("page.title")
            title = title[:500] if isinstance(title, str) else ""
            entries.append(LinkEntry(
                owner_id=owner_id, link_id=link_id, analysis_id=analysis_id, url=link.url, domain=link.domain,
                title=title, search_text=f"{link.url} {title} {link.domain}".lower(), status=analysis.status,
                analysed_at=analysis.finished_at if final and analysis.finished_at else analysis.queued_at,
                signals=signals, providers=calls.get(analysis_id, {}) if final else {}))
        LinkEntry.objects.bulk_create(entries, batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ('links', '0004_provider_result_deferred'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='LinkEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.CharField(max_length=2048)),
                ('domain', models.CharField(max_length=253)),
                ('title', models.CharField(blank=True, default='', max_length=500)),
                ('search_text', models.TextField(blank=True, default='')),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'),
                                                     ('partial', 'Partial'), ('failed', 'Failed')], max_length=10)),
                ('analysed_at', models.DateTimeField()),
                ('signals', models.JSONField(blank=True, default=dict)),
                ('providers', models.JSONField(blank=True, default=dict)),
                ('analysis', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+',
                                               to='links.analysis')),
                ('link', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='entries',
                                           to='links.link')),
                ('owner', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                            related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-analysed_at', '-id'],
                'indexes': [
                    models.Index(fields=['owner', 'analysed_at', 'id'], name='entry_analysed'),
                    models.Index(fields=['owner', 'domain', 'id'], name='entry_domain'),
                    models.Index(fields=['owner', 'status', 'id'], name='entry_status'),
                    models.Index(fields=['owner', 'url', 'id'], name='entry_url'),
                    models.Index(fields=['owner', 'title', 'id'], name='entry_title'),
                ],
            },
        ),
        migrations.RunPython(create_signal_indexes, drop_signal_indexes),
        migrations.RunPython(fill_entries, migrations.RunPython.noop),
    ]
