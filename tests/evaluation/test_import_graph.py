"""The module-level import graph of toolformer_jax has no cycle (read with `ast`, nothing is
imported): in particular the eval generators import registry.py and items.py, and neither
imports a generator module back (registry.generators() imports them inside the function).
"""
import ast
import pathlib
from typing import Dict, List, Set

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = "toolformer_jax"


def _modules() -> Dict[str, pathlib.Path]:
  out = {}
  for path in sorted((REPO / PACKAGE).rglob("*.py")):
    parts = path.relative_to(REPO).with_suffix("").parts
    if "__pycache__" in parts:
      continue
    is_package = parts[-1] == "__init__"
    out[".".join(parts[:-1] if is_package else parts)] = path
  return out


def _module_level_imports(name: str, path: pathlib.Path, known: Set[str]) -> Set[str]:
  """The toolformer_jax modules `name` imports outside functions and classes."""
  is_package = path.name == "__init__.py"
  targets, todo = set(), list(ast.parse(path.read_text()).body)
  while todo:
    node = todo.pop()
    if isinstance(node, ast.Import):
      targets |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolve against this module's package
        package = name.split(".") if is_package else name.split(".")[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
      for alias in node.names:  # `from pkg import mod` imports pkg.mod if it is a module
        targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    elif isinstance(node, (ast.If, ast.Try, ast.With)):
      for field in ("body", "orelse", "finalbody", "handlers"):
        todo += getattr(node, field, [])
    elif isinstance(node, ast.ExceptHandler):
      todo += node.body
  return {t for t in targets if t in known and t != name}


def import_graph() -> Dict[str, Set[str]]:
  modules = _modules()
  known = set(modules)
  return {name: _module_level_imports(name, path, known) for name, path in modules.items()}


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """The strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_the_eval_generators_import_one_way():
  graph = import_graph()
  evaluation = "toolformer_jax.evaluation."
  items, registry = evaluation + "items", evaluation + "registry"
  generator_modules = [evaluation + m for m in ("math_items", "date_items", "fact_items",
                                                "heldout_items", "notool_items")]
  assert not {m for m in graph[items] if m.startswith(evaluation)} - {evaluation + "metrics"}
  assert graph[registry] & set(generator_modules) == set()
  for module in generator_modules:
    assert {items, registry} <= graph[module], module
  from toolformer_jax.evaluation import registry as registry_lib  # pylint: disable=g-import-not-at-top
  assert sorted(registry_lib.GENERATOR_MODULES) == sorted(generator_modules)


def test_module_level_imports_of_toolformer_jax_are_acyclic():
  found = cycles(import_graph())
  print("module-level import cycles in toolformer_jax:", found or "none")
  assert not found, found


def test_cycles_finds_a_cycle():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
  assert cycles(graph) == [["a", "b", "c"]]
  assert cycles({"a": {"b"}, "b": set()}) == []
