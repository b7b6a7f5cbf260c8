"""Held-out generated eval: kinds, frames and wordings the annotation corpus never produces.

  math_heldout_v1   comparisons ("exceed ... by"), rates (litres a minute, kilometres an
                    hour), unit changes (hours to minutes, metres to centimetres, kilograms
                    to grams), discounts, areas, and two-step problems (packs then a loss,
                    two prices times two counts)
  dates_heldout_v1  relative-date questions in other frames: a book due back in some days,
                    a parcel sent some days back, a course that ends some weeks on, an
                    opening some days off, a birth year; only the Calendar knows today

Written independently of `toolformer_jax.annotate.synthetic_docs` (whose documents are
"Question: <one operation or offset question>\\nAnswer: <answer>" and statements of one
operation): tests/evaluation/test_heldout_templates.py renders every corpus document kind
and every held-out template with placeholders for numbers, names, objects, months and
weekdays and fails if a held-out template equals a corpus one or shares a run of four
words with it. The prompt is the shared zero-shot frame (`items.question_prompt`) every
model is asked in, base, control and fine-tuned alike.

Items within one (generator, seed) are distinct: a draw whose prompt was already made is
drawn again from the item's next stream (`items.distinct`).
"""
from __future__ import annotations

import datetime
from typing import List, Optional, Tuple

from toolformer_jax.evaluation import date_items
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry

PEOPLE = ("Odile", "Baptiste", "Wanjiru", "Sigrun", "Teodor", "Marisol", "Kenji", "Anouk",
          "Rafael", "Ebele", "Halvard", "Soraya")


# --- math ------------------------------------------------------------------------------------
def _math_problem(r) -> Tuple[str, float]:
  """(question, answer) of one held-out word problem."""
  kind = r.randrange(10)
  a_name = r.choice(PEOPLE)
  b_name = r.choice([p for p in PEOPLE if p != a_name])
  if kind == 0:  # comparison
    b = r.randint(40, 800)
    a = b + r.randint(5, 400)
    return (f"{a_name} keeps {a} postcards in an album and {b_name} keeps {b}. By how many "
            f"postcards does {a_name}'s album exceed {b_name}'s?", a - b)
  if kind == 1:  # rate
    per, minutes = r.randint(6, 75), r.randint(4, 45)
    return (f"A garden pump moves {per} litres of water per minute. Running for {minutes} "
            f"minutes, what volume does it move, in litres?", per * minutes)
  if kind == 2:  # speed, a quotient
    hours, speed = r.randint(2, 9), r.randint(12, 95)
    return (f"Cycling at a steady pace, {a_name} covers {hours * speed} kilometres in "
            f"{hours} hours. Find the speed in kilometres per hour.", speed)
  if kind == 3:  # unit change
    unit = r.randrange(3)
    if unit == 0:
      hours = r.randint(3, 48)
      return f"Convert {hours} hours into minutes.", hours * 60
    if unit == 1:
      metres = r.randint(3, 90)
      return (f"A roll of fabric measures {metres} metres. Express that length in "
              "centimetres.", metres * 100)
    kilos = r.randint(2, 60)
    return f"Write {kilos} kilograms in grams.", kilos * 1000
  if kind == 4:  # discount
    price, percent = 20 * r.randint(2, 40), r.choice((10, 20, 25, 50))
    return (f"A jacket priced at {price} dollars is reduced by {percent} percent. By how "
            "many dollars is the price cut?", price * percent // 100)
  if kind == 5:  # area
    length, width = r.randint(4, 60), r.randint(3, 40)
    return (f"A rectangular lawn is {length} metres long and {width} metres wide. Find its "
            "area in square metres.", length * width)
  if kind == 6:  # two steps: packs, then a loss
    packs, each = r.randint(3, 20), r.randint(6, 24)
    lost = r.randint(1, packs * each - 1)
    return (f"{a_name} orders {packs} cartons holding {each} candles apiece, and {lost} "
            "candles arrive broken. Count the unbroken candles.", packs * each - lost)
  if kind == 7:  # two steps: two prices, two counts
    adult, child = r.randint(8, 30), r.randint(3, 12)
    adults, children = r.randint(2, 9), r.randint(2, 9)
    return (f"Museum entry is {adult} dollars for an adult and {child} dollars for a child. "
            f"Find the total paid by {adults} adults together with {children} children.",
            adult * adults + child * children)
  if kind == 8:  # a bill split
    diners, share = r.randint(3, 12), r.randint(9, 60)
    return (f"A dinner bill of {diners * share} dollars is split evenly between {diners} "
            "diners. What does one diner pay, in dollars?", share)
  weeks, per_week = r.randint(3, 30), r.randint(15, 120)
  return (f"{a_name} runs {per_week} kilometres in a typical week. Over {weeks} such weeks, "
          "what distance does that add up to, in kilometres?", per_week * weeks)


@registry.register("math_heldout", "v1", items_lib.MATH, 100,
                   "held-out word problems: comparisons, rates, unit changes, two steps",
                   heldout=True)
def math_heldout_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  name = "math_heldout_v1"
  out = []
  for i, (question, answer) in enumerate(items_lib.distinct(name, seed, count, _math_problem)):
    target = items_lib.format_number(answer)
    out.append(items_lib.EvalItem(
        id=items_lib.item_id(name, seed, i), inputs=items_lib.question_prompt(question),
        targets=target, answers=(target,), match=metrics.NUMBER, family=items_lib.MATH))
  return out


# --- dates -----------------------------------------------------------------------------------
def _date_question(r, today: datetime.date) -> Tuple[str, str, Tuple[str, ...], str]:
  """(question, target, answers, match) of one held-out date question about `today`."""
  kind = r.randrange(6)
  n = r.randint(2, 120)
  if kind == 0:
    day = today + datetime.timedelta(days=n)
    return (f"My library book must go back in {n} days. On what weekday does it fall due?",
            date_items.weekday_name(day), (date_items.weekday_name(day),), metrics.WEEKDAY)
  if kind == 1:
    day = today - datetime.timedelta(days=n)
    return (f"The parcel was posted {n} days back. On what calendar date was it posted?",
            date_items.long_date(day), (day.isoformat(),), metrics.DATE)
  if kind == 2:
    weeks = r.randint(2, 20)
    day = today + datetime.timedelta(weeks=weeks)
    return (f"A training course starting now lasts exactly {weeks} weeks. On what calendar "
            "date does it finish?", date_items.long_date(day), (day.isoformat(),),
            metrics.DATE)
  if kind == 3:
    day = today + datetime.timedelta(days=r.randint(2, 500))
    left = (day - today).days
    return (f"The new bridge opens to traffic on {date_items.long_date(day)}. Counting from "
            "now, in how many days does it open?", str(left), (str(left),), metrics.NUMBER)
  if kind == 4:
    years = r.randint(5, 90)
    return (f"A tortoise hatched exactly {years} years before the present day. In what year "
            "did it hatch?", str(today.year - years), (str(today.year - years),),
            metrics.NUMBER)
  day = today - datetime.timedelta(days=n)
  return (f"Our team shipped its first release {n} days before the present day. On what "
          "weekday did that happen?", date_items.weekday_name(day),
          (date_items.weekday_name(day),), metrics.WEEKDAY)


@registry.register("dates_heldout", "v1", items_lib.DATES, 100,
                   "held-out questions relative to today, a date only the Calendar gives",
                   heldout=True)
def dates_heldout_items(count: int, seed: int, today: Optional[str] = None
                        ) -> List[items_lib.EvalItem]:
  return date_items.today_items("dates_heldout_v1", count, seed, _date_question, today)
