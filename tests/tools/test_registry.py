"""The registry: names, examples, gin-configured construction, start-up failures."""
import gin
import pytest

from toolformer_jax.tools import base
from toolformer_jax.tools import calculator
from toolformer_jax.tools import call_format
from toolformer_jax.tools import registry


def test_paper_tools_are_registered_with_parseable_examples():
  names = [name for name, _, _ in registry.tool_examples()]
  assert sorted(names) == ["Calculator", "Calendar", "MT", "QA", "WikiSearch"]
  for name, example, description in registry.tool_examples():
    call = call_format.parse_call(example)
    assert call.tool == name and description


def test_build_selected_tools_with_gin():
  with gin.unlock_config():
    gin.parse_config("""
        build_tools.enabled = ["Calculator", "Calendar"]
        CalculatorConfig.decimals = 4
        Calendar.fallback_date = "2000-02-29"
    """)
  try:
    tools = registry.build_tools()
  finally:
    gin.clear_config()
  assert sorted(tools) == ["Calculator", "Calendar"]
  assert tools["Calculator"]("1 / 3") == "0.3333"
  assert tools["Calendar"]("") == "Today is Tuesday, February 29, 2000."


def test_unknown_tool_fails_at_start_up():
  with pytest.raises(ValueError, match="unknown tools"):
    registry.build_tools(["Calculator", "Weather"])


def test_register_a_project_tool(monkeypatch):
  class Upper(base.Tool):
    name = "Upper"
    example = 'Upper("abc")'

    def __call__(self, args, context=None):
      return args.upper()

  monkeypatch.setitem(registry.TOOL_CLASSES, "Upper", Upper)
  assert registry.build_tools(["Upper"])["Upper"]("x") == "X"
  with pytest.raises(ValueError):
    registry.register_tool("not a name", Upper)


def test_factory_name_mismatch_fails():
  with pytest.raises(ValueError, match="calls itself"):
    registry.build_tools(["Calendar"], factories={"Calendar": calculator.Calculator})
