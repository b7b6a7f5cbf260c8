"""Calendar: the document's date from its date field or URL, else the fallback."""
import datetime

import pytest

from toolformer_jax.tools import base
from toolformer_jax.tools import calendar_tool
from toolformer_jax.tools.calendar_tool import Calendar


@pytest.mark.parametrize("context, expected", [
    ({"date": "2023-01-30"}, "Today is Monday, January 30, 2023."),  # the paper's example
    ({"date": datetime.date(2020, 2, 29)}, "Today is Saturday, February 29, 2020."),
    ({"date": datetime.datetime(1999, 12, 31, 23, 59)}, "Today is Friday, December 31, 1999."),
    ({"date_download": "2019-01-16T09:36:11Z"}, "Today is Wednesday, January 16, 2019."),
    ({"url": "https://example.com/news/2021/07/04/fireworks"},
     "Today is Sunday, July 4, 2021."),
    ({"url": "https://example.com/2017-3-9-story.html"}, "Today is Thursday, March 9, 2017."),
    ({"url": "https://example.com/archive/20151021/back-to-the-future"},
     "Today is Wednesday, October 21, 2015."),
    # The date field wins over the URL.
    ({"date": "2000-01-01", "url": "https://x.org/2010/10/10/a"},
     "Today is Saturday, January 1, 2000."),
    # An unusable date field falls through to the URL.
    ({"date": "yesterday", "url": "https://x.org/2010/10/10/a"},
     "Today is Sunday, October 10, 2010."),
    # No date anywhere (or impossible ones): the fallback date.
    ({"url": "https://example.com/2023/02/30/not-a-day"}, "Today is Monday, January 30, 2023."),
    ({"url": "https://example.com/item/123456789"}, "Today is Monday, January 30, 2023."),
    ({}, "Today is Monday, January 30, 2023."),
    (None, "Today is Monday, January 30, 2023."),
])
def test_document_date(context, expected):
  assert Calendar()("", context) == expected


def test_fallback_is_configurable():
  assert Calendar(fallback_date="2024-12-25")("") == "Today is Wednesday, December 25, 2024."
  with pytest.raises(base.ToolError, match="no date"):
    Calendar(fallback_date=None)("")
  with pytest.raises(ValueError, match="YYYY-MM-DD"):
    Calendar(fallback_date="tomorrow")


def test_url_dates_can_be_ignored():
  tool = Calendar(use_url=False)
  assert tool("", {"url": "https://x.org/2010/10/10/a"}) == "Today is Monday, January 30, 2023."


@pytest.mark.parametrize("args, expected", [
    ("", "Today is Monday, January 30, 2023."),
    ("today", "Today is Monday, January 30, 2023."),
    (" Now. ", "Today is Monday, January 30, 2023."),
    ("3 days ago", "Friday, January 27, 2023."),
    ("three days ago", "Friday, January 27, 2023."),
    ("-3 days", "Friday, January 27, 2023."),
    ("1 day before today", "Sunday, January 29, 2023."),
    ("30 days earlier", "Saturday, December 31, 2022."),
    ("2 weeks from now", "Monday, February 13, 2023."),
    ("a week from today", "Monday, February 6, 2023."),
    ("in 5 days", "Saturday, February 4, 2023."),
    ("+100 days", "Wednesday, May 10, 2023."),
    ("10 days  later", "Thursday, February 9, 2023."),
    ("1 month from now", "Tuesday, February 28, 2023."),  # Feb has no 30th: its last day
    ("12 years ago", "Sunday, January 30, 2011."),
    ("+1 year", "Tuesday, January 30, 2024."),
])
def test_offsets_from_the_document_date(args, expected):
  assert Calendar()(args) == expected


def test_offsets_agree_with_timedelta_over_a_range_of_days():
  tool = Calendar()
  start = datetime.date(2023, 1, 30)
  for n in range(1, 400, 7):
    for args, day in ((f"{n} days ago", start - datetime.timedelta(days=n)),
                      (f"{n} days from now", start + datetime.timedelta(days=n))):
      assert tool(args) == f"{day:%A}, {day:%B} {day.day}, {day.year}.", args


def test_leap_day_year_steps_clamp_to_the_month():
  assert Calendar()("1 year ago", {"date": "2024-02-29"}) == "Tuesday, February 28, 2023."
  assert Calendar()("4 years from now", {"date": "2024-02-29"}) == (
      "Tuesday, February 29, 2028.")


@pytest.mark.parametrize("args, message", [
    ("tomorrow", "offset such as"),
    ("3 days", "which way"),           # no direction
    ("+3 days ago", "which way"),      # two directions that disagree
    ("in 3 days ago", "which way"),
    ("thirteen days ago", "unknown count"),
    ("3 fortnights ago", "offset such as"),
    ("99999 years ago", "out of range"),
    ("99999 weeks from now", "limited to"),
    ("3 days ago; rm -rf /", "offset such as"),
])
def test_bad_arguments_are_tool_errors(args, message):
  with pytest.raises(base.ToolError, match=message):
    Calendar()(args)


def test_cache_key_depends_on_the_date():
  tool = Calendar()
  assert tool.cache_key("", {"date": "2023-01-30"}) != tool.cache_key("", {"date": "2023-01-31"})
  assert tool.cache_key("", {"url": "https://x.org/2023/01/30/"}) == tool.cache_key(
      "", {"date": "2023-01-30"})


def test_every_day_of_a_leap_year_matches_the_standard_library():
  day = datetime.date(2024, 1, 1)
  tool = Calendar()
  while day.year == 2024:
    expected = f"Today is {day:%A}, {day:%B} {day.day}, {day.year}."  # C locale names
    assert tool("", {"date": day.isoformat()}) == expected
    day += datetime.timedelta(days=1)


def test_date_from_url_rejects_non_strings():
  assert calendar_tool.date_from_url(None) is None
  assert calendar_tool.date_from_url(12345) is None


@pytest.mark.parametrize("text, expected", [
    ("Question: Today is Friday, May 5, 2017. What day", datetime.date(2017, 5, 5)),
    ("It is May 5, 2017, and", datetime.date(2017, 5, 5)),
    ("it is friday may 5 2017", datetime.date(2017, 5, 5)),
    ("Today's date is Saturday, the March 4, 2000.", datetime.date(2000, 3, 4)),
    ("Today is Friday, May 5, 2017. Later: the date is June 1, 2018.",
     datetime.date(2018, 6, 1)),  # the last statement before the call
    ("Today is Monday, February 30, 2017.", None),  # no such day
    ("On Monday, July 4, 1776 the declaration", None),  # a date, not stated as today
    ("Today is Friday.", None),
    (None, None),
    (12345, None),
])
def test_date_from_text(text, expected):
  assert calendar_tool.date_from_text(text) == expected


def test_a_date_the_text_states_is_today_after_fields_and_urls():
  tool = Calendar()
  stated = {"text": "Today is Friday, May 5, 2017. What day of the week was it 3 days ago?"}
  assert tool("", stated) == "Today is Friday, May 5, 2017."
  assert tool("3 days ago", stated) == "Tuesday, May 2, 2017."
  assert tool("", dict(stated, date="2020-01-01")) == "Today is Wednesday, January 1, 2020."
  assert tool("", dict(stated, url="https://x.org/2010/10/10/a")) == (
      "Today is Sunday, October 10, 2010.")
  assert Calendar(use_text=False)("", stated) == "Today is Monday, January 30, 2023."
  assert tool.cache_key("", stated) != tool.cache_key("", {"text": "It is May 6, 2017."})


@pytest.mark.parametrize("args, expected", [
    ("May 5, 2023", "Friday, May 5, 2023 is 95 days from today."),
    ("Friday, May 5, 2023.", "Friday, May 5, 2023 is 95 days from today."),
    ("5 May 2023", "Friday, May 5, 2023 is 95 days from today."),
    ("2023-05-05", "Friday, May 5, 2023 is 95 days from today."),
    ("january 31st, 2023", "Tuesday, January 31, 2023 is 1 day from today."),
    ("January 30, 2023", "Monday, January 30, 2023 is today."),
    ("December 25, 2022", "Sunday, December 25, 2022 was 36 days ago."),
])
def test_a_date_argument_gives_its_distance_from_today(args, expected):
  assert Calendar()(args) == expected


def test_date_distances_agree_with_the_standard_library():
  tool, today = Calendar(), datetime.date(2023, 1, 30)
  for n in range(2, 400, 9):
    day = today + datetime.timedelta(days=n)
    assert tool(f"{day:%B} {day.day}, {day.year}") == (
        f"{day:%A}, {day:%B} {day.day}, {day.year} is {n} days from today.")


@pytest.mark.parametrize("args", ["February 30, 2023", "2023-13-01"])
def test_impossible_dates_are_tool_errors(args):
  with pytest.raises(base.ToolError, match="no such day"):
    Calendar()(args)


@pytest.mark.parametrize("args", ["", "3 days ago", "May 5, 2023", "nonsense"])
def test_the_papers_calendar_returns_today_whatever_it_is_asked(args):
  paper = Calendar(accept_arguments=False)
  context = {"date": "2023-01-30"}
  assert paper(args, context) == "Today is Monday, January 30, 2023."
  assert paper.cache_key(args, context) == paper.cache_key("", context)
  if args == "3 days ago":  # the extended tool computes the offset
    assert Calendar()(args, context) == "Friday, January 27, 2023."


def test_the_papers_calendar_is_a_gin_binding():
  import gin  # pylint: disable=g-import-not-at-top
  with gin.unlock_config():
    gin.parse_config("toolformer_jax.tools.Calendar.accept_arguments = False")
  try:
    from toolformer_jax.tools import registry  # pylint: disable=g-import-not-at-top
    assert registry.build_tools(["Calendar"])["Calendar"].accept_arguments is False
  finally:
    gin.clear_config()
  with pytest.raises(ValueError, match="accept_arguments must be a bool"):
    Calendar(accept_arguments="no")
