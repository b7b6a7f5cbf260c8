"""Calendar: `Calendar()` -> `Today is Monday, January 30, 2023.` for the document's date.

The date comes from the call's context, in this order: a date field of the document
(`date`, `date_download` as in CCNet, `timestamp`, `published`; a `datetime.date`,
`datetime.datetime` or ISO-8601 string), else a date in the document's URL (the paper's
choice for CCNet: `/2023/01/30/`, `2023-01-30`, `20230130`, ...), else the configured
`fallback_date`. Deterministic: never reads the clock. Names are English regardless of
the process locale.
"""
from __future__ import annotations

import datetime
import re
from typing import Any, Hashable, Optional, Sequence

import gin

from toolformer_jax.tools import base

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")

# Year (1900-2099), month, day with one separator kind, not inside a longer number.
_URL_DATE_PATTERNS = (
    re.compile(r"(?<![0-9])((?:19|20)[0-9]{2})([/_.-])([01]?[0-9])\2([0-3]?[0-9])(?![0-9])"),
    re.compile(r"(?<![0-9])((?:19|20)[0-9]{2})()(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])(?![0-9])"),
)
_ISO_DATE_RE = re.compile(r"\s*((?:1[0-9]|20)[0-9]{2})-([01][0-9])-([0-3][0-9])")

DEFAULT_DATE_FIELDS = ("date", "date_download", "timestamp", "published")
DEFAULT_FALLBACK_DATE = "2023-01-30"


def render_date(date: datetime.date) -> str:
  """`Today is Monday, January 30, 2023.`"""
  return (f"Today is {_WEEKDAYS[date.weekday()]}, {_MONTHS[date.month - 1]} "
          f"{date.day}, {date.year}.")


def parse_date_value(value: Any) -> Optional[datetime.date]:
  """A date from a date/datetime or an ISO-8601 string's leading YYYY-MM-DD; else None."""
  if isinstance(value, datetime.datetime):
    return value.date()
  if isinstance(value, datetime.date):
    return value
  if isinstance(value, bytes):
    value = value.decode("utf-8", errors="replace")
  if isinstance(value, str):
    m = _ISO_DATE_RE.match(value[:64])
    if m:
      return _make_date(*m.groups())
  return None


def date_from_url(url: str) -> Optional[datetime.date]:
  """The first valid date written in a URL's path, or None."""
  if not isinstance(url, str):
    return None
  url = url[:2048]
  for pattern in _URL_DATE_PATTERNS:
    for m in pattern.finditer(url):
      year, _, month, day = m.groups()
      date = _make_date(year, month, day)
      if date is not None:
        return date
  return None


def _make_date(year: str, month: str, day: str) -> Optional[datetime.date]:
  try:
    return datetime.date(int(year), int(month), int(day))
  except ValueError:
    return None


@gin.configurable(module="toolformer_jax.tools")
class Calendar(base.Tool):
  """Today's date for the document being annotated."""

  name = "Calendar"
  example = "Calendar()"
  description = "the document's date, as 'Today is <Weekday>, <Month> <d>, <yyyy>.'"
  max_args_chars = 64
  takes_arguments = False

  def __init__(self, fallback_date: Optional[str] = DEFAULT_FALLBACK_DATE,
               date_fields: Sequence[str] = DEFAULT_DATE_FIELDS, use_url: bool = True):
    """fallback_date: ISO date used when the document has none (None: an error result)."""
    self.date_fields = tuple(date_fields)
    self.use_url = use_url
    self.fallback_date = None
    if fallback_date is not None:
      self.fallback_date = parse_date_value(fallback_date)
      if self.fallback_date is None:
        raise ValueError(f"Calendar.fallback_date must be YYYY-MM-DD, got {fallback_date!r}")

  def document_date(self, context: base.Context) -> Optional[datetime.date]:
    """The date a document's context gives, or the fallback date."""
    if context:
      for field in self.date_fields:
        if field in context:
          date = parse_date_value(context[field])
          if date is not None:
            return date
      if self.use_url:
        date = date_from_url(context.get("url"))
        if date is not None:
          return date
    return self.fallback_date

  def cache_key(self, args: str, context: base.Context = None) -> Hashable:
    return (args, self.document_date(context))

  def __call__(self, args: str, context: base.Context = None) -> str:
    if args.strip():
      raise base.ToolError("Calendar takes no arguments: write Calendar()")
    date = self.document_date(context)
    if date is None:
      raise base.ToolError("the document has no date and no fallback date is configured")
    return render_date(date)
