"""Calendar: `Calendar()` -> `Today is Monday, January 30, 2023.` for the document's date.

Beyond the paper, an optional offset from that date: `Calendar(3 days ago)` -> `Friday,
January 27, 2023.`, `Calendar(2 weeks from now)`, `Calendar(+1 month)`, `Calendar(12 years
ago)`; a count in digits or words (one to twelve, "a"), a unit (day, week, month, year) and
a direction (a sign, or ago / before / earlier / back, from now / from today / later /
ahead / after / hence, or a leading "in"). `Calendar(today)` is `Calendar()`. Month and year
steps keep the day of the month where it exists, else the month's last day. A date as the
argument gives its distance from today: `Calendar(May 5, 2023)` -> `Friday, May 5, 2023 is
95 days from today.` (also `2023-05-05`, `5 May 2023`).

The date comes from the call's context, in this order: a date field of the document
(`date`, `date_download` as in CCNet, `timestamp`, `published`; a `datetime.date`,
`datetime.datetime` or ISO-8601 string), else a date in the document's URL (the paper's
choice for CCNet: `/2023/01/30/`, `2023-01-30`, `20230130`, ...), else the last date the
text before the call states as today (context `text`, `base.CONTEXT_TEXT`: "Today is Friday, May 5, 2017.",
"It is May 5, 2017", "The date is ...", "Today's date is ..."; beyond the paper, so that a
prompt that says what day it is gets answers relative to that day), else the configured
`fallback_date`. Deterministic: never reads the clock. Names are English regardless of
the process locale.
"""
from __future__ import annotations

import calendar as stdlib_calendar
import datetime
import re
from typing import Any, Hashable, Optional, Sequence, Tuple

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
_COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
                "twelve": 12}
_PAST = ("ago", "before", "before today", "earlier", "back")
_FUTURE = ("from now", "from today", "later", "ahead", "after", "after today", "hence")
_OFFSET_RE = re.compile(
    r"(?P<in>in\s+)?(?P<sign>[+-])?\s*(?P<count>[0-9]{1,5}|[a-z]+)\s+"
    r"(?P<unit>day|week|month|year)s?"
    r"(?:\s+(?P<direction>" + "|".join(w.replace(" ", r"\s+") for w in _PAST + _FUTURE)
    + r"))?")
_TODAY_WORDS = ("", "today", "now")
_STATED_DATE_RE = re.compile(
    r"\b(?:today is|it is|the date is|today's date is)\s+(?:(?:" + "|".join(_WEEKDAYS)
    + r"),?\s+)?(?:the\s+)?(" + "|".join(_MONTHS) + r")\s+([0-3]?[0-9]),?\s+([0-9]{4})\b",
    re.IGNORECASE)
_TEXT_TAIL_CHARS = 4096  # only the end of a long text is searched
_MONTH_ALT = "|".join(_MONTHS)
_MONTH_NUMBERS = {name.lower(): number for number, name in enumerate(_MONTHS, 1)}
_ARGUMENT_DATE_RES = (  # a date as the whole argument: (month, day, year) groups by name
    re.compile(rf"(?:(?:{'|'.join(_WEEKDAYS)}),?\s+)?(?P<month>{_MONTH_ALT})\s+"
               r"(?P<day>[0-3]?[0-9])(?:st|nd|rd|th)?,?\s+(?P<year>[0-9]{4})", re.IGNORECASE),
    re.compile(rf"(?P<day>[0-3]?[0-9])\s+(?P<month>{_MONTH_ALT}),?\s+(?P<year>[0-9]{{4}})",
               re.IGNORECASE),
    re.compile(r"(?P<year>[0-9]{4})-(?P<month>[01]?[0-9])-(?P<day>[0-3]?[0-9])"),
)
MAX_OFFSET_DAYS = 200 * 366

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


def date_from_text(text: Any) -> Optional[datetime.date]:
  """The last valid date `text` states as today ("Today is Friday, May 5, 2017"), or None."""
  if not isinstance(text, str):
    return None
  found = None
  for m in _STATED_DATE_RE.finditer(text[-_TEXT_TAIL_CHARS:]):
    month = _MONTH_NUMBERS[m.group(1).lower()]
    found = _make_date(m.group(3), str(month), m.group(2)) or found
  return found


def parse_argument_date(args: str) -> Optional[datetime.date]:
  """The date an argument names as a whole ('May 5, 2023', '5 May 2023', '2023-05-05'), or
  None when it names none (an offset, say)."""
  text = " ".join(args.strip().rstrip(".").split())
  for pattern in _ARGUMENT_DATE_RES:
    m = pattern.fullmatch(text)
    if m:
      month = m.group("month")
      if not month.isdigit():
        month = str(_MONTH_NUMBERS[month.lower()])
      date = _make_date(m.group("year"), month, m.group("day"))
      if date is None:
        raise base.ToolError(f"no such day: {text[:40]!r}")
      return date
  return None


def distance_text(day: datetime.date, today: datetime.date) -> str:
  """'Friday, May 5, 2023 is 95 days from today.' (or '... was 3 days ago.', '... is today.')"""
  name = f"{_WEEKDAYS[day.weekday()]}, {_MONTHS[day.month - 1]} {day.day}, {day.year}"
  days = (day - today).days
  if days == 0:
    return f"{name} is today."
  unit = "day" if abs(days) == 1 else "days"
  return f"{name} is {days} {unit} from today." if days > 0 else f"{name} was {-days} {unit} ago."


def parse_offset(args: str) -> Tuple[int, str]:
  """`(signed count, unit)` of an offset argument ('3 days ago' -> (-3, 'day')); (0, 'day')
  for no argument, 'today' or 'now'. Raises ToolError on anything else."""
  text = " ".join(args.strip().lower().rstrip(".").split())
  if text in _TODAY_WORDS:
    return 0, "day"
  m = _OFFSET_RE.fullmatch(text)
  if m is None:
    raise base.ToolError(
        f"Calendar takes no argument, an offset such as '3 days ago' or '2 weeks from "
        f"now', or a date such as 'May 5, 2023', got {args[:40]!r}")
  count_text = m.group("count")
  count = int(count_text) if count_text.isdigit() else _COUNT_WORDS.get(count_text)
  if count is None:
    raise base.ToolError(f"unknown count {count_text!r} in Calendar({args[:40]})")
  direction = m.group("direction")
  direction = " ".join(direction.split()) if direction else None
  signs = set()
  if m.group("sign"):
    signs.add(-1 if m.group("sign") == "-" else 1)
  if m.group("in"):
    signs.add(1)
  if direction:
    signs.add(-1 if direction in _PAST else 1)
  if len(signs) != 1:
    raise base.ToolError(
        f"say which way: '3 days ago' or '3 days from now' (got {args[:40]!r})")
  return signs.pop() * count, m.group("unit")


def shift_date(date: datetime.date, count: int, unit: str) -> datetime.date:
  """`date` moved by `count` units; month and year steps clamp the day to the month."""
  try:
    if unit in ("day", "week"):
      days = count * (7 if unit == "week" else 1)
      if abs(days) > MAX_OFFSET_DAYS:
        raise base.ToolError(f"offsets are limited to {MAX_OFFSET_DAYS} days")
      return date + datetime.timedelta(days=days)
    months = date.year * 12 + date.month - 1 + count * (12 if unit == "year" else 1)
    year, month = divmod(months, 12)
    if not datetime.MINYEAR <= year <= datetime.MAXYEAR:
      raise ValueError(f"year {year}")
    return datetime.date(year, month + 1,
                         min(date.day, stdlib_calendar.monthrange(year, month + 1)[1]))
  except (OverflowError, ValueError) as e:
    raise base.ToolError(f"the date is out of range: {e}") from None


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
  description = ("the document's date, as 'Today is <Weekday>, <Month> <d>, <yyyy>.', the "
                 "day an offset away (Calendar(3 days ago)) or a date's distance from today "
                 "(Calendar(May 5, 2023))")
  max_args_chars = 64

  def __init__(self, fallback_date: Optional[str] = DEFAULT_FALLBACK_DATE,
               date_fields: Sequence[str] = DEFAULT_DATE_FIELDS, use_url: bool = True,
               use_text: bool = True, accept_arguments: bool = True):
    """fallback_date: ISO date used when the document has none (None: an error result);
    use_text: read a date the text before the call states as today; accept_arguments:
    False is the paper's argument-free Calendar (every call returns today's date, its
    argument ignored), True the extended one that computes offsets and distances."""
    if not isinstance(accept_arguments, bool):
      raise ValueError(f"Calendar.accept_arguments must be a bool, got {accept_arguments!r}")
    self.accept_arguments = accept_arguments
    self.date_fields = tuple(date_fields)
    self.use_url = use_url
    self.use_text = use_text
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
      if self.use_text:
        date = date_from_text(context.get(base.CONTEXT_TEXT))
        if date is not None:
          return date
    return self.fallback_date

  def cache_key(self, args: str, context: base.Context = None) -> Hashable:
    return (args if self.accept_arguments else "", self.document_date(context))

  def __call__(self, args: str, context: base.Context = None) -> str:
    if not self.accept_arguments:  # the paper's tool: today's date, whatever was asked
      args = ""
    named = parse_argument_date(args)
    count, unit = (0, "day") if named is not None else parse_offset(args)
    date = self.document_date(context)
    if date is None:
      raise base.ToolError("the document has no date and no fallback date is configured")
    if named is not None:
      return distance_text(named, date)
    if count == 0:
      return render_date(date)
    day = shift_date(date, count, unit)
    return f"{_WEEKDAYS[day.weekday()]}, {_MONTHS[day.month - 1]} {day.day}, {day.year}."
