"""Toolformer's tools: Calculator, Calendar, WikiSearch, QA and MT, the call format and a
safe execution engine.

    from toolformer_jax import tools
    executor = tools.ToolExecutor(tools.build_tools(["Calculator", "Calendar"]))
    executor.execute("Calculator(400 / 1400)").text  # '0.29'

Command line: `python -m toolformer_jax.tools 'Calculator(400 / 1400)'`.
"""
from toolformer_jax.tools.base import STATUSES
from toolformer_jax.tools.base import Tool
from toolformer_jax.tools.base import ToolError
from toolformer_jax.tools.base import ToolRefused
from toolformer_jax.tools.base import ToolResult
from toolformer_jax.tools.base import ToolUnavailable
from toolformer_jax.tools.calculator import Calculator
from toolformer_jax.tools.calendar_tool import Calendar
from toolformer_jax.tools.engine import ToolExecutor
from toolformer_jax.tools.call_format import CallSpan
from toolformer_jax.tools.call_format import find_calls
from toolformer_jax.tools.call_format import find_pending_call
from toolformer_jax.tools.call_format import parse_call
from toolformer_jax.tools.call_format import ParseError
from toolformer_jax.tools.call_format import render_call
from toolformer_jax.tools.call_format import render_completion
from toolformer_jax.tools.call_format import render_pending
from toolformer_jax.tools.call_format import strip_calls
from toolformer_jax.tools.call_format import ToolCall
from toolformer_jax.tools.mt import MT
from toolformer_jax.tools.qa import QA
from toolformer_jax.tools.registry import build_tools
from toolformer_jax.tools.registry import register_tool
from toolformer_jax.tools.registry import TOOL_CLASSES
from toolformer_jax.tools.wikisearch import WikiSearch
