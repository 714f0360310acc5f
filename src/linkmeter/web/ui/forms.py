"""The UI's forms: the submission (pasted URLs or a CSV upload) and the results table's sort and filter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings

from linkmeter.providers.registry import DEFAULT_NAMES, PROVIDER_CLASSES
from linkmeter.web.links.models import BatchSource
from linkmeter.web.links.selectors.details import NUMERIC_SIGNALS
from linkmeter.web.links.selectors.tables import SignalRange
from linkmeter.web.ui import csvimport

PROVIDER_CHOICES = [(cls.name, cls.name) for cls in PROVIDER_CLASSES]
SIGNAL_CHOICES = [("", "—"), *((signal, signal) for signal in NUMERIC_SIGNALS)]


@dataclass(frozen=True, slots=True)
class PendingCsv:
    """An upload whose URL column the person must choose; kept in the session meanwhile."""

    filename: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"filename": self.filename, "text": self.text}

    @classmethod
    def from_dict(cls, data: Any) -> PendingCsv | None:
        if isinstance(data, dict) and isinstance(data.get("filename"), str) and isinstance(data.get("text"), str):
            return cls(data["filename"], data["text"])
        return None


class SubmitForm(forms.Form):
    """Validates the home page's form into numbered input lines (line number, text) and a source."""

    urls = forms.CharField(required=False, widget=forms.Textarea(attrs={
        "rows": 10, "class": "form-control font-monospace", "spellcheck": "false",
        "placeholder": "https://example.org/article\nhttps://news.example.org/a/1"}),
        label="URLs, one per line")
    csv_file = forms.FileField(required=False, label="or upload a CSV file",
                               widget=forms.ClearableFileInput(attrs={"class": "form-control",
                                                                      "accept": ".csv,.txt,text/csv,text/plain"}))
    csv_column = forms.IntegerField(required=False, min_value=1)
    use_pending = forms.BooleanField(required=False)
    providers = forms.MultipleChoiceField(choices=PROVIDER_CHOICES, required=True,
                                          widget=forms.CheckboxSelectMultiple,
                                          error_messages={"required": "choose at least one provider"})
    name = forms.CharField(required=False, max_length=200, label="Name (optional)",
                           widget=forms.TextInput(attrs={"class": "form-control"}))
    fresh = forms.BooleanField(required=False, label="Fresh: ignore recent results and analyse again")

    def __init__(self, *args: Any, pending: PendingCsv | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"providers": list(DEFAULT_NAMES)})
        super().__init__(*args, **kwargs)
        self.pending = pending
        self.needs_column: csvimport.CsvTable | None = None  # set when the URL column is ambiguous

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        text = (data.get("urls") or "").strip()
        upload = data.get("csv_file")
        use_pending = bool(data.get("use_pending")) and self.pending is not None and upload is None
        if text and (upload is not None or use_pending):
            raise forms.ValidationError("paste URLs or upload a file, not both")
        if upload is not None or use_pending:
            data["lines"], data["source"] = self._csv_lines(upload, data.get("csv_column")), BatchSource.CSV
        elif text:
            data["lines"] = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            data["source"] = BatchSource.PASTE
        else:
            raise forms.ValidationError("paste at least one URL or upload a CSV file")
        return data

    def _csv_lines(self, upload: Any, column: int | None) -> list[tuple[int, str]]:
        limits = settings.LINKMETER
        try:
            if upload is not None:
                self.pending = None
                text = csvimport.read_upload(upload, max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
                filename = str(upload.name)
            else:
                assert self.pending is not None
                text, filename = self.pending.text, self.pending.filename
            table = csvimport.parse(text, max_rows=int(limits["UPLOAD_MAX_ROWS"]))
        except csvimport.CsvError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from exc
        chosen = column - 1 if column is not None and column <= len(table.columns) else None
        index = chosen if chosen is not None and upload is None else table.url_column
        if index is None:
            self.needs_column = table
            self.pending = PendingCsv(filename, text)
            why = ("several columns look like URLs" if len(table.candidates) > 1
                   else "no column looks like URLs")
            raise forms.ValidationError(f"{why}: choose the column that holds the URLs", code="choose_column")
        lines = table.values(index)
        if not lines:
            raise forms.ValidationError(f"the column “{table.columns[index]}” is empty", code="empty")
        return lines


class TableQuery(forms.Form):
    """The results table's query string: sort by a numeric signal, keep a range of one, keep the links flagged
    spam or not, pick a page."""

    sort = forms.ChoiceField(choices=SIGNAL_CHOICES, required=False)
    order = forms.ChoiceField(choices=[("desc", "descending"), ("asc", "ascending")], required=False)
    signal = forms.ChoiceField(choices=SIGNAL_CHOICES, required=False, label="filter")
    min = forms.FloatField(required=False)
    max = forms.FloatField(required=False)
    spam = forms.ChoiceField(choices=[("", "all"), ("flagged", "flagged spam"), ("clear", "not flagged")],
                             required=False, label="spam")
    page = forms.IntegerField(required=False, min_value=1)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for selectors.tables.batch_table (invalid parameters are ignored)."""
        data = self.cleaned_data if self.is_valid() else {}
        ranges = []
        if data.get("signal") and (data.get("min") is not None or data.get("max") is not None):
            ranges.append(SignalRange(data["signal"], data.get("min"), data.get("max")))
        spam = {"flagged": True, "clear": False}.get(data.get("spam") or "")
        return {"sort": data.get("sort") or None, "descending": data.get("order") != "asc", "ranges": ranges,
                "spam": spam}

    def page_number(self) -> int:
        return int(self.cleaned_data.get("page") or 1) if self.is_valid() else 1
