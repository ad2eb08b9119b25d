"""Tools in the prompt for chat templates that cannot render them (and the check for that).

Templates with native tool support (Qwen2.5: ``<tools>`` in the system turn) get ``tools`` as
OpenAI function dicts. Templates without it (SmolLM2's ChatML) get a system-prompt section that
lists the tools and shows the dialect's call syntax; earlier assistant calls are written back as
the dialect's call text and tool results as user turns wrapped in ``<tool_response>`` tags.
Prompts that offer no tools get earlier calls and results as prose (``prose_calls``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import TemplateError

from service.errors import InvalidRequest
from service.prompting.template import ChatTemplate
from service.toolcalls import ToolCallParser

logger = logging.getLogger(__name__)

_PROBE_NAME = "fncall_probe_tool_7f3a"
_PROBE_TOOL = {
    "type": "function",
    "function": {"name": _PROBE_NAME, "parameters": {"type": "object", "properties": {}}},
}


def supports_tools(template: ChatTemplate) -> bool:
    """Whether ``template`` renders the ``tools`` it is given (probed with a dummy tool)."""
    try:
        rendered = template.render([{"role": "user", "content": "ping"}], [_PROBE_TOOL])
    except (InvalidRequest, TemplateError) as exc:
        logger.info("chat template fails with tools (%s): injecting tools in the prompt", exc)
        return False
    return _PROBE_NAME in rendered


# When to call, added to the system turn of prompts that offer tools to a template that renders
# them (measured on Qwen2.5-Coder-0.5B's Hermes dialect). The Qwen2.5 template
# puts the system text right before its "# Tools" section; without a client system message,
# this replaces the template's default one. Measured with scripts/eval_tools.py (README).
CALL_GUIDANCE = (
    "You are a helpful assistant with access to functions. Call a function only when the "
    "user's request needs it; otherwise answer directly in text. When the request needs "
    "several calls (for example the same question about several places), write one "
    "<tool_call> block for each call. Once a function's result is in the conversation, do "
    "not call it again with the same arguments: answer the user with the result."
)


def with_guidance(
    messages: list[dict[str, Any]], guidance: str = CALL_GUIDANCE
) -> list[dict[str, Any]]:
    """``messages`` with ``guidance`` after the first system message's text (or as one)."""
    return with_tool_section(messages, guidance)


def tool_section(tools: Sequence[Mapping[str, Any]], dialect: type[ToolCallParser]) -> str:
    """System-prompt text listing ``tools`` and how to call them in ``dialect``."""
    listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    example = dialect.format_calls([("<function-name>", {"<argument>": "<value>"})])
    return (
        "You have access to the following tools:\n<tools>\n"
        f"{listed}\n</tools>\n\n"
        "To call one or more tools, answer with only the calls, in this format:\n"
        f"{example}\n"
        "Otherwise answer the user directly."
    )


def with_tool_section(messages: list[dict[str, Any]], section: str) -> list[dict[str, Any]]:
    """``messages`` with ``section`` appended to the first system message (or as one)."""
    if messages and messages[0]["role"] == "system":
        first = dict(messages[0], content=f"{messages[0]['content']}\n\n{section}")
        return [first, *messages[1:]]
    return [{"role": "system", "content": section}, *messages]


def tool_result_turn(contents: Sequence[str]) -> dict[str, Any]:
    """One user turn carrying consecutive tool results."""
    wrapped = "\n".join(f"<tool_response>\n{text}\n</tool_response>" for text in contents)
    return {"role": "user", "content": wrapped}


def prose_call(name: str, arguments: Mapping[str, Any]) -> str:
    """One call as prose: ``name({"argument": "value"})``."""
    return f"{name}({json.dumps(arguments, ensure_ascii=False)})"


def prose_calls(calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """Earlier calls without results as assistant prose, for prompts that offer no tools."""
    return "\n".join(f"I called {prose_call(name, arguments)}." for name, arguments in calls)


def prose_results_turn(results: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """One user turn carrying consecutive tool results as prose (``call returned: result``)
    and asking for the answer."""
    lines = "\n".join(f"{call} returned: {result}" for call, result in results)
    return {"role": "user", "content": f"{lines}\n\n{PROSE_RESULTS_ASK}"}


# After results told as prose: what the small model needs to answer instead of calling again.
PROSE_RESULTS_ASK = "Answer my question with these results."
