"""Questions no tool helps with: the answer stands in the question itself.

  notool_context_v1  a short statement and a question about it: "Liesel keeps her maps in
                     a green tin and her letters in a blue one. What colour is the tin that
                     holds the maps?" -> green (first 20 words). The numbers in some
                     statements are to be read, not computed; no date is asked.

A model that learned when a call helps answers these without one: the report's
tool-selection matrix shows the share of outputs that call a tool here (every call on this
family is a wrong-tool call). The frames are written for this family; none is a frame of
the annotation corpus's documents (tests/evaluation/test_heldout_templates.py).
"""
from __future__ import annotations

from typing import List, Tuple

from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry

_PEOPLE = ("Liesel", "Amadou", "Ingrid", "Tariq", "Priya", "Bartholomew", "Chiara", "Oskar",
           "Nadia", "Emeka", "Solveig", "Joaquin")
_COLOURS = ("green", "blue", "red", "yellow", "white", "black", "orange", "purple")
_THINGS = (("maps", "letters"), ("keys", "coins"), ("seeds", "buttons"),
           ("photos", "tickets"), ("pencils", "brushes"))
_TOWNS = ("Tromsø", "Arequipa", "Kumasi", "Ghent", "Matsue", "Olomouc", "Mendoza",
          "Tartu", "Aarhus", "Salta")
_PETS = ("dog", "parrot", "goat", "cat")
_INSTRUMENTS = ("cello", "flute", "banjo", "harp", "trumpet", "accordion")


def _question(r) -> Tuple[str, str]:
  """(question, answer) of one item."""
  name = r.choice(_PEOPLE)
  kind = r.randrange(5)
  if kind == 0:
    first, second = r.choice(_THINGS)
    c1, c2 = r.sample(_COLOURS, 2)
    a1, a2 = ("an" if c[0] in "aeiou" else "a" for c in (c1, c2))
    return (f"{name} keeps the {first} in {a1} {c1} tin and the {second} in {a2} {c2} one. "
            f"What colour is the tin that holds the {first}?", c1)
  if kind == 1:
    home, work = r.sample(_TOWNS, 2)
    return (f"{name} sleeps in {home} but spends each working day in {work}. In which "
            f"town does {name} work?", work)
  if kind == 2:
    a, b = r.sample(_INSTRUMENTS, 2)
    return (f"On Mondays {name} practises the {a}, and on Thursdays the {b}. Which "
            f"instrument is practised on Thursdays?", b)
  if kind == 3:
    pet = r.choice(_PETS)
    other = r.choice([p for p in _PEOPLE if p != name])
    return (f"{other} looks after the {pet} that belongs to {name}. Who owns the {pet}?",
            name)
  room, floor = r.randint(2, 40), r.randint(2, 9)
  return (f"{name}'s office is room {room}, up on floor {floor}. On which floor is "
          f"the office?", str(floor))


@registry.register("notool_context", "v1", items_lib.NOTOOL, 100,
                   "questions answered by the question's own statement (no tool helps)",
                   heldout=True)
def context_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  full_name = "notool_context_v1"
  drawn = items_lib.distinct(full_name, seed, count, _question)
  return [items_lib.EvalItem(
      id=items_lib.item_id(full_name, seed, i), inputs=items_lib.question_prompt(q),
      targets=a, answers=(a,), match=metrics.QA_MATCH, family=items_lib.NOTOOL)
          for i, (q, a) in enumerate(drawn)]
