"""Seed the three plans: free, pro and unlimited (operators change them in the admin)."""

from typing import Any

from django.db import migrations

# Every provider known when this migration was written but pagespeed (paid plans only); a provider added
# later is offered to free accounts once an operator adds it to the plan.
FREE_PROVIDERS = [
    "page", "dns", "rdap", "crtsh", "dnsbl", "safebrowsing", "urlhaus", "phishtank", "wayback", "commoncrawl",
    "hackernews", "facebook", "bluesky", "mastodon", "reddit", "openpagerank", "moz", "tranco", "engagement",
    "authority",
]

PLANS = [
    {"code": "free", "name": "Free", "priority": 0, "rate_per_second": 10, "rate_per_minute": 120,
     "daily_urls": 1000, "monthly_urls": 10000, "max_batch": 100, "max_in_flight": 200,
     "providers": FREE_PROVIDERS},
    {"code": "pro", "name": "Pro", "priority": 4, "rate_per_second": 20, "rate_per_minute": 600,
     "daily_urls": 100000, "monthly_urls": 1000000, "max_batch": 1000, "max_in_flight": 10000, "providers": []},
    {"code": "unlimited", "name": "Unlimited", "priority": 8, "rate_per_second": None, "rate_per_minute": None,
     "daily_urls": None, "monthly_urls": None, "max_batch": None, "max_in_flight": None, "providers": []},
]


def seed(apps: Any, schema_editor: Any) -> None:
    Plan = apps.get_model("plans", "Plan")
    for values in PLANS:
        Plan.objects.update_or_create(code=values["code"], defaults=values)


def unseed(apps: Any, schema_editor: Any) -> None:
    apps.get_model("plans", "Plan").objects.filter(code__in=[p["code"] for p in PLANS], accounts=None).delete()


class Migration(migrations.Migration):
    dependencies = [("plans", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
