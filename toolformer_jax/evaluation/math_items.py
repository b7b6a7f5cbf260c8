"""Math word problems in the image of ASDiv / SVAMP / MAWPS (the paper's math benchmarks).

  math_templates_v2          the project's own one- and two-step templates (SVAMP-style
                             variations: comparisons, "fewer than", leftovers, unit prices)
  math_gsm_symbolic_v2       reasoning-gym's gsm_symbolic (GSM8K-derived templates)
  math_basic_arithmetic_v2   reasoning-gym's basic_arithmetic (2-4 terms, 1-3 digits)

Every item asks for one number (match `number`: the first number of the output). The
names, objects and phrasings of the templates are disjoint from the annotation's arithmetic
documents (`toolformer_jax.annotate.synthetic_docs`), and reasoning-gym's streams are seeded
from the generator's name and seed, so no eval problem is an annotation document.
"""
from __future__ import annotations

import re
from typing import List

from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry

NAMES = ("Priya", "Mateo", "Chloe", "Kwame", "Ingrid", "Hiro", "Fatima", "Diego", "Amara",
         "Lukas", "Zainab", "Tomas")
OBJECTS = ("feathers", "pebbles", "ribbons", "acorns", "beads", "kites", "muffins",
           "lanterns", "buttons", "crayons")
SHOPS = ("bakery", "florist", "toy shop", "bookstall", "hardware store")
PRICED = ("notebook", "sandwich", "ticket", "candle", "flower pot")


def _two_names(r):
  a = r.choice(NAMES)
  b = r.choice([n for n in NAMES if n != a])
  return a, b


def _template(r) -> tuple:
  """(question, answer) of one problem."""
  kind = r.randrange(9)
  a_name, b_name = _two_names(r)
  obj = r.choice(OBJECTS)
  if kind == 0:
    a, b = r.randint(20, 600), r.randint(10, 400)
    return (f"{a_name} collected {a} {obj}. {b_name} collected {b} more {obj} than "
            f"{a_name}. How many {obj} did {b_name} collect?", a + b)
  if kind == 1:
    a = r.randint(100, 900)
    b = r.randint(10, a - 10)
    return (f"{a_name} had {a} {obj}. After handing {b} of them to {b_name}, how many "
            f"{obj} does {a_name} still have?", a - b)
  if kind == 2:
    a, b = r.randint(6, 48), r.randint(6, 48)
    return f"There are {a} crates with {b} {obj} in every crate. How many {obj} are there?", a * b
  if kind == 3:
    jars, each = r.randint(3, 25), r.randint(4, 60)
    return (f"{a_name} splits {jars * each} {obj} evenly into {jars} jars. How many {obj} "
            f"end up in each jar?", each)
  if kind == 4:
    packs, each = r.randint(3, 30), r.randint(5, 40)
    lost = r.randint(1, packs * each - 1)
    return (f"{a_name} bought {packs} packs of {obj} with {each} in each pack and then "
            f"lost {lost} of them. How many {obj} does {a_name} have now?",
            packs * each - lost)
  if kind == 5:
    a, b = r.randint(15, 700), r.randint(5, 300)
    return (f"{a_name} has {a} {obj}, which is {b} fewer than {b_name} has. How many "
            f"{obj} does {b_name} have?", a + b)
  if kind == 6:
    shop = r.choice(SHOPS)
    a, b, c = r.randint(20, 400), r.randint(20, 400), r.randint(20, 400)
    return (f"A {shop} sold {a} {obj} on Monday, {b} on Tuesday and {c} on Wednesday. "
            f"How many {obj} did it sell over the three days?", a + b + c)
  if kind == 7:
    weekly, weeks = r.randint(12, 95), r.randint(4, 52)
    return (f"{a_name} puts {weekly} dollars into a savings jar every week. How many "
            f"dollars are in the jar after {weeks} weeks?", weekly * weeks)
  item = r.choice(PRICED)
  cents, count = r.randint(105, 2495), r.randint(3, 19)
  price = cents / 100
  return (f"One {item} costs {price:.2f} dollars. How many dollars do {count} of them "
          f"cost?", round(price * count, 2))


@registry.register("math_templates", "v2", items_lib.MATH, 300,
                   "own one- and two-step word problems (ASDiv/SVAMP style)")
def template_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  name = "math_templates_v2"
  out = []
  for i in range(count):
    question, answer = _template(items_lib.rng(name, seed, i))
    target = items_lib.format_number(answer)
    out.append(items_lib.EvalItem(
        id=items_lib.item_id(name, seed, i), inputs=items_lib.question_prompt(question),
        targets=target, answers=(target,), match=metrics.NUMBER, family=items_lib.MATH))
  return out


# reasoning-gym appends an instruction for chat models; the paper's prompts have none.
_GSM_INSTRUCTION = re.compile(r"\s*Give the result as your final answer\. Do not include units\.\s*$")


def _gym_seed(full_name: str, seed: int) -> int:
  return items_lib.rng(full_name, seed, "reasoning-gym").randrange(2**31)


def _gym_items(dataset: str, full_name: str, count: int, seed: int, **config
               ) -> List[items_lib.EvalItem]:
  import reasoning_gym  # pylint: disable=g-import-not-at-top
  if count == 0:
    return []
  data = reasoning_gym.create_dataset(dataset, size=count, seed=_gym_seed(full_name, seed),
                                      **config)
  out = []
  for i in range(count):
    entry = data[i]
    question = _GSM_INSTRUCTION.sub("", entry["question"]).strip()
    value = metrics.parse_number(entry["answer"])
    if value is None:
      raise ValueError(f"reasoning-gym {dataset} gave a non-numeric answer "
                       f"{entry['answer']!r} (item {i})")
    target = items_lib.format_number(value)
    out.append(items_lib.EvalItem(
        id=items_lib.item_id(full_name, seed, i), inputs=items_lib.question_prompt(question),
        targets=target, answers=(target,), match=metrics.NUMBER, family=items_lib.MATH))
  return out


@registry.register("math_gsm_symbolic", "v2", items_lib.MATH, 200,
                   "reasoning-gym gsm_symbolic (GSM8K-style multi-step problems)",
                   heldout=True)
def gsm_symbolic_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  return _gym_items("gsm_symbolic", "math_gsm_symbolic_v2", count, seed)


@registry.register("math_basic_arithmetic", "v2", items_lib.MATH, 200,
                   "reasoning-gym basic_arithmetic (2-4 terms of 1-3 digits)")
def basic_arithmetic_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  return _gym_items("basic_arithmetic", "math_basic_arithmetic_v2", count, seed,
                    min_terms=2, max_terms=4, min_digits=1, max_digits=3)
