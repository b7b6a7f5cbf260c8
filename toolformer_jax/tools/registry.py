"""The tool registry: API name -> tool class, and `build_tools` (gin-configurable).

A run file picks the enabled tools and configures each one, e.g.

    build_tools.enabled = ["Calculator", "Calendar", "WikiSearch"]
    WikiSearch.snippet_chars = 300
    RetrievalConfig.corpus_path = "/data/kilt_knowledgesource.jsonl"

Tools are constructed eagerly by `build_tools` (index loading, backend checks), never
lazily inside a call, so model output cannot trigger file or process work.
WikiSearch and QA share one loaded index. `register_tool` adds a project's own tool.
"""
from __future__ import annotations

from typing import Callable, Collection, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import gin

from toolformer_jax.tools import base
from toolformer_jax.tools import calculator
from toolformer_jax.tools import calendar_tool
from toolformer_jax.tools import mt
from toolformer_jax.tools import qa
from toolformer_jax.tools import wikisearch

# The paper's five tools, in the paper's order of presentation.
TOOL_CLASSES: Dict[str, Type[base.Tool]] = {
    "QA": qa.QA,
    "Calculator": calculator.Calculator,
    "WikiSearch": wikisearch.WikiSearch,
    "MT": mt.MT,
    "Calendar": calendar_tool.Calendar,
}
DEFAULT_TOOLS: Tuple[str, ...] = tuple(TOOL_CLASSES)


def register_tool(name: str, tool_class: Type[base.Tool]) -> None:
  """Adds a tool class under its API name (the name the model writes)."""
  if not name.isidentifier():
    raise ValueError(f"a tool name must be an identifier, got {name!r}")
  TOOL_CLASSES[name] = tool_class


def unknown_tool_error(name: str, known: Collection[str]) -> Optional[str]:
  """The refusal of a call to `name` if it is not one of the `known` tools, else None.

  The one check of a called tool's name, for the engine (its built tools) and the CLI (the
  registered tools, before building any). `name` comes from model text: it is cut short.
  """
  if name in known:
    return None
  return f"unknown tool {name[:64]!r} (known: {', '.join(sorted(known))})"


def tool_examples() -> List[Tuple[str, str, str]]:
  """(name, example call, description) for every registered tool, without building any."""
  return [(name, cls.example, cls.description) for name, cls in TOOL_CLASSES.items()]


@gin.configurable(module="toolformer_jax.tools")
def build_tools(enabled: Sequence[str] = DEFAULT_TOOLS,
                factories: Optional[Mapping[str, Callable[[], base.Tool]]] = None
                ) -> Dict[str, base.Tool]:
  """Constructs the enabled tools (their gin bindings apply). Fails loudly at start-up.

  factories: overrides of how a tool is made (name -> zero-argument callable).
  """
  unknown = [n for n in enabled if n not in TOOL_CLASSES and n not in (factories or {})]
  if unknown:
    raise ValueError(f"unknown tools {unknown}; registered: {sorted(TOOL_CLASSES)}")
  tools: Dict[str, base.Tool] = {}
  for name in enabled:
    factory = (factories or {}).get(name, TOOL_CLASSES.get(name))
    tool = factory()
    if tool.name != name:
      raise ValueError(f"tool registered as {name!r} calls itself {tool.name!r}")
    tools[name] = tool
  return tools
