"""Plans, which plan each account is on, and what each account (and key) used: quota counters per calendar
period (UTC) and a daily history."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

FREE = "free"
PRO = "pro"
UNLIMITED = "unlimited"
DEFAULT_PLAN = FREE
MAX_PLAN_PRIORITY = 8  # + the small-submission bonus stays within RabbitMQ's 0..10 (config.celery.MAX_PRIORITY)


class Plan(models.Model):
    """What an account on this plan may use. A limit of None means no limit."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    priority = models.SmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(MAX_PLAN_PRIORITY)],
        help_text=f"0..{MAX_PLAN_PRIORITY}; higher runs first (the embedded runner and RabbitMQ message priority)")
    rate_per_second = models.PositiveIntegerField(null=True, blank=True, help_text="API requests per second")
    rate_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="API requests per minute")
    daily_urls = models.PositiveIntegerField(null=True, blank=True, help_text="URLs per calendar day (UTC)")
    monthly_urls = models.PositiveIntegerField(null=True, blank=True, help_text="URLs per calendar month (UTC)")
    max_batch = models.PositiveIntegerField(null=True, blank=True, help_text="URLs per submission")
    max_in_flight = models.PositiveIntegerField(null=True, blank=True,
                                                help_text="URLs queued or running at once")
    providers = models.JSONField(default=list, blank=True,
                                 help_text="providers this plan may use; empty = every provider")

    class Meta:
        ordering = ["priority", "code"]

    def __str__(self) -> str:
        return self.name

    def allows_provider(self, name: str) -> bool:
        return not self.providers or name in self.providers


class AccountPlan(models.Model):
    """The plan of one account (an account with no row is on the default plan, ``free``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="account_plan")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} on {self.plan}"


class Period(models.TextChoices):
    DAY = "day"
    MONTH = "month"


class QuotaCounter(models.Model):
    """URLs an account used in one calendar period (UTC); reserved with one conditional UPDATE."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=5, choices=Period.choices)
    start = models.DateField()  # the period's first day
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "period", "start"], name="one_counter_per_period")]

    def __str__(self) -> str:
        return f"{self.user} {self.period} {self.start}: {self.used}"


class UsageDay(models.Model):
    """What an account did on one day (UTC) with one key (key_id 0: no key, e.g. the UI): the history and the
    per-key breakdown of /api/v1/usage."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key_id = models.BigIntegerField(default=0)
    key_label = models.CharField(max_length=100, blank=True, default="")
    day = models.DateField()
    urls = models.PositiveIntegerField(default=0)
    submissions = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day", "key_id"]
        constraints = [models.UniqueConstraint(fields=["user", "key_id", "day"], name="one_usage_row_per_key_day")]

    def __str__(self) -> str:
        return f"{self.user} key {self.key_id} {self.day}: {self.urls}"
