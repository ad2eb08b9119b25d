"""From a validated request to prompt token ids, per the model's template and tool dialect.

- ``tool_choice: none`` (or no tools): rendered without tools; calls are not parsed.
- ``auto``: tools rendered; calls parsed from the output.
- ``required`` / named: as ``auto``, and the assistant turn is pre-filled with the dialect's call
  opening (named: up to the arguments), so the model must write a call; the pre-fill is put back
  in front of the generated text before parsing.

Assistant ``tool_calls`` arguments arrive as JSON strings and are decoded before rendering
(templates ``tojson`` them). Everything is encoded by ``PromptTokenizer``, so control-token
strings in client content stay plain text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.models import ServedModel
from service.prompting.tool_prompt import tool_result_turn, tool_section, with_tool_section
from service.protocol import (
    AssistantMessage,
    ChatRequest,
    NamedToolChoice,
    ToolMessage,
    content_text,
)


@dataclass(frozen=True)
class ChatPrompt:
    """The encoded prompt and how to read the answer."""

    ids: list[int]
    prefill: str  # assistant text already in the prompt, to put before the generated text
    tool_names: frozenset[str]  # calls to accept; empty: do not parse calls


def build_prompt(model: ServedModel, request: ChatRequest) -> ChatPrompt:
    """Render and encode ``request`` for ``model``."""
    choice = request.effective_tool_choice
    tools = [tool.to_openai() for tool in request.tools or []] if choice != "none" else []
    messages = _messages(model, request)
    if tools and not model.native_tools:
        messages = with_tool_section(messages, tool_section(tools, model.dialect))
    prefill = _prefill(model, choice, tools) if tools else ""
    ids = model.tokenizer.encode_chat(
        model.template, messages, tools if tools and model.native_tools else None, suffix=prefill
    )
    names = {tool["function"]["name"] for tool in tools}
    if isinstance(choice, NamedToolChoice):
        names = {choice.function.name}
    return ChatPrompt(ids, prefill, frozenset(names))


def _prefill(model: ServedModel, choice: str | NamedToolChoice, tools: list[dict[str, Any]]) -> str:
    """The call opening forced into the assistant turn. ``required`` over a single tool admits
    exactly the outputs of naming that tool, so it gets the named (longer) opening."""
    if isinstance(choice, NamedToolChoice):
        return model.dialect.named_prefill(choice.function.name)
    if choice == "required" and len(tools) == 1:
        return model.dialect.named_prefill(tools[0]["function"]["name"])
    return model.dialect.required_prefill if choice == "required" else ""


def _messages(model: ServedModel, request: ChatRequest) -> list[dict[str, Any]]:
    """OpenAI messages as template dicts (native tools) or as plain turns (injected tools)."""
    call_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    pending_results: list[str] = []
    for message in request.messages:
        if isinstance(message, ToolMessage) and not model.native_tools:
            pending_results.append(content_text(message.content) or "")
            continue
        if pending_results:
            out.append(tool_result_turn(pending_results))
            pending_results = []
        if isinstance(message, AssistantMessage):
            call_names.update({call.id: call.function.name for call in message.tool_calls or []})
            out.append(_assistant(model, message))
        elif isinstance(message, ToolMessage):
            out.append(_tool_result(message, call_names))
        else:
            role = "system" if message.role == "developer" else message.role
            out.append({"role": role, "content": content_text(message.content)})
    if pending_results:
        out.append(tool_result_turn(pending_results))
    return out


def _assistant(model: ServedModel, message: AssistantMessage) -> dict[str, Any]:
    text = content_text(message.content)
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]
    if not calls:
        return {"role": "assistant", "content": text or ""}
    if not model.native_tools:
        written = model.dialect.format_calls(calls)
        return {"role": "assistant", "content": f"{text}\n{written}" if text else written}
    tool_calls = [
        {"id": call.id, "type": "function", "function": {"name": name, "arguments": arguments}}
        for call, (name, arguments) in zip(message.tool_calls or [], calls, strict=True)
    ]
    return {"role": "assistant", "content": text, "tool_calls": tool_calls}


def _tool_result(message: ToolMessage, call_names: dict[str, str]) -> dict[str, Any]:
    return {
        "role": "tool",
        "content": content_text(message.content),
        "tool_call_id": message.tool_call_id,
        "name": call_names.get(message.tool_call_id),
    }
