"""The registry of seeded, versioned eval generators.

A generator module (math_items, date_items, fact_items) registers each of its generators
with the `register` decorator at import time; `GENERATOR_MODULES` is the one list of those
modules, and `generators()` imports them on first use. So at module level the imports only
go generator module -> registry -> items, never back: this module imports no generator
module at its top (tests/evaluation/test_import_graph.py checks the graph is acyclic).

`generator_name(...)` is registered under `<name>_<version>` (items.py's docstring: the
version is bumped whenever the items a seed gives change).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Dict, List, Optional

from toolformer_jax.evaluation import items as items_lib

# Every module that registers generators, imported (in this order) by `generators()`.
GENERATOR_MODULES = (
    "toolformer_jax.evaluation.date_items",
    "toolformer_jax.evaluation.fact_items",
    "toolformer_jax.evaluation.heldout_items",
    "toolformer_jax.evaluation.math_items",
    "toolformer_jax.evaluation.notool_items",
)


@dataclasses.dataclass(frozen=True)
class Generator:
  """A registered generator: `fn(count, seed)` returns up to `count` items."""

  name: str
  version: str
  family: str
  fn: Callable[[int, int], List[items_lib.EvalItem]]
  default_count: int
  description: str
  # Held out by construction (True): by its templates, kinds and wordings, none of the
  # annotation corpus's (heldout_by TEMPLATES; tests/evaluation/test_heldout_templates.py),
  # or by its entities, none of which the annotation corpus states facts about (ENTITIES;
  # corpora.is_heldout_entity, tests/evaluation/test_heldout_entities.py). False:
  # in-distribution, its questions mirror the corpus's question-answer documents.
  heldout: bool = False
  heldout_by: str = ""

  @property
  def full_name(self) -> str:
    return f"{self.name}_{self.version}"

  def generate(self, count: Optional[int] = None, seed: int = 0) -> List[items_lib.EvalItem]:
    count = self.default_count if count is None else count
    if not isinstance(count, int) or count < 0:
      raise ValueError(f"{self.full_name}: count must be an int >= 0, got {count!r}")
    items = self.fn(count, seed)
    for item in items:
      problem = item.problem()
      if problem:
        raise ValueError(f"{self.full_name} made an item it cannot score ({item.id}): "
                         f"{problem}")
    return items


TEMPLATES, ENTITIES = "templates", "entities"  # the two ways to be held out

GENERATORS: Dict[str, Generator] = {}


def register(name: str, version: str, family: str, default_count: int, description: str,
             heldout: bool = False, heldout_by: str = TEMPLATES):
  """Decorator: registers `fn(count, seed) -> [EvalItem]` under `<name>_<version>`."""
  if heldout_by not in (TEMPLATES, ENTITIES):
    raise ValueError(f"heldout_by must be {TEMPLATES!r} or {ENTITIES!r}, got {heldout_by!r}")

  def wrap(fn):
    generator = Generator(name, version, family, fn, default_count, description, heldout,
                          heldout_by if heldout else "")
    if generator.full_name in GENERATORS:
      raise ValueError(f"generator {generator.full_name} registered twice")
    GENERATORS[generator.full_name] = generator
    return fn

  return wrap


def generators() -> Dict[str, Generator]:
  """Every registered generator by full name (imports the generator modules)."""
  for module in GENERATOR_MODULES:
    importlib.import_module(module)
  return dict(GENERATORS)


def get(full_name: str) -> Generator:
  """The generator registered under `full_name` (ValueError naming the known ones if none)."""
  known = generators()
  if full_name not in known:
    raise ValueError(f"unknown eval generator {full_name!r}; known: {', '.join(sorted(known))}")
  return known[full_name]


def generate(full_name: str, count: Optional[int] = None, seed: int = 0
             ) -> List[items_lib.EvalItem]:
  """The items of the generator `full_name` (`get(full_name).generate(count, seed)`)."""
  return get(full_name).generate(count, seed)
