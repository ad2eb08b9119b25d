"""From a validated request to prompt token ids, per the model's template and tool dialect.

- ``tool_choice: none`` (or no tools): rendered without tools; calls are not parsed.
- ``auto``: tools rendered; calls parsed from the output.
- ``required`` / named: as ``auto``, and the assistant turn is pre-filled with the dialect's call
  opening (named: up to the arguments), so the model must write a call; the pre-fill is put back
  in front of the generated text before parsing.

Earlier calls and tool results render through the template (native tools) or as the dialect's
call text and ``<tool_response>`` user turns (injected tools). When the request offers no tools,
they render as prose instead: with no call syntax in the prompt, markup in the history only
invites the model to write another call (Qwen2.5-Coder-0.5B, seed weather flow, temperature 0.7:
a text answer in 0 of 8 sampled replies with markup in the history, 8 of 8 with prose).

Assistant ``tool_calls`` arguments arrive as JSON strings and are decoded before rendering
(templates ``tojson`` them). Everything is encoded by ``PromptTokenizer``, so control-token
strings in client content stay plain text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from service.models import ServedModel
from service.prompting.tool_prompt import (
    prose_call,
    prose_calls,
    prose_results_turn,
    tool_result_turn,
    tool_section,
    with_guidance,
    with_tool_section,
)
from service.protocol import (
    AssistantMessage,
    ChatRequest,
    NamedToolChoice,
    ToolMessage,
    content_text,
)
from service.toolcalls import ToolCallParser
from service.toolcalls.base import canonical_call

# How earlier calls and results are written: through the template, as dialect text, as prose.
HistoryStyle = Literal["template", "dialect", "prose"]


@dataclass(frozen=True)
class ChatPrompt:
    """The encoded prompt and how to read the answer."""

    ids: list[int]
    prefill: str  # assistant text already in the prompt, to put before the generated text
    prefill_tokens: int  # how many of the last ``ids`` encode ``prefill``
    tool_names: frozenset[str]  # calls to accept; empty: do not parse calls
    answered: frozenset[str] = frozenset()  # ``canonical_call``s answered by tool results
    context: str = ""  # user and tool text, casefolded: what extra calls must be grounded in


def build_prompt(model: ServedModel, request: ChatRequest) -> ChatPrompt:
    """Render and encode ``request`` for ``model``."""
    choice = request.effective_tool_choice
    tools = [tool.to_openai() for tool in request.tools or []] if choice != "none" else []
    style = _history_style(model, bool(tools))
    messages = _messages(request, style, model.dialect)
    if tools and model.native_tools:
        messages = with_guidance(messages)
    if tools and not model.native_tools:
        messages = with_tool_section(messages, tool_section(tools, model.dialect))
    prefill = _prefill(model, request, tools) if tools else ""
    ids = model.tokenizer.encode_chat(
        model.template, messages, tools if tools and model.native_tools else None
    )
    # The pre-fill is server text, encoded on its own (its control-token strings become ids), so
    # its ids end the prompt exactly as they would start a natural answer.
    prefill_ids = model.tokenizer.encode_rendered(prefill)
    names = {tool["function"]["name"] for tool in tools}
    if isinstance(choice, NamedToolChoice):
        names = {choice.function.name}
    return ChatPrompt(
        ids + prefill_ids,
        prefill,
        len(prefill_ids),
        frozenset(names),
        answered_calls(request),
        _context(request),
    )


def _context(request: ChatRequest) -> str:
    """The user and tool messages' text, casefolded."""
    return "\n".join(
        content_text(message.content) or ""
        for message in request.messages
        if message.role in ("user", "tool")
    ).casefold()


def answered_calls(request: ChatRequest) -> frozenset[str]:
    """The earlier calls (as ``canonical_call``) that a ``tool`` message answered."""
    calls: dict[str, str] = {}
    answered = set()
    for message in request.messages:
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or []:
                arguments = json.loads(call.function.arguments)
                calls[call.id] = canonical_call(call.function.name, arguments)
        elif isinstance(message, ToolMessage) and message.tool_call_id in calls:
            answered.add(calls[message.tool_call_id])
    return frozenset(answered)


def _prefill(model: ServedModel, request: ChatRequest, tools: list[dict[str, Any]]) -> str:
    """The call opening forced into the assistant turn. ``required`` over a single tool without
    parallel calls admits exactly the outputs of naming that tool, so it gets the named (longer)
    opening; with parallel calls it keeps the generic one, which the grammar lets repeat."""
    choice = request.effective_tool_choice
    if isinstance(choice, NamedToolChoice):
        return model.dialect.named_prefill(choice.function.name)
    if choice == "required" and len(tools) == 1 and not request.parallel_tool_calls:
        return model.dialect.named_prefill(tools[0]["function"]["name"])
    return model.dialect.required_prefill if choice == "required" else ""


def _history_style(model: ServedModel, tools_shown: bool) -> HistoryStyle:
    if not tools_shown:
        return "prose"
    return "template" if model.native_tools else "dialect"


def _messages(
    request: ChatRequest, style: HistoryStyle, dialect: type[ToolCallParser]
) -> list[dict[str, Any]]:
    """OpenAI messages as template dicts; calls and results written per ``style``."""
    call_names: dict[str, str] = {}
    answered = {m.tool_call_id for m in request.messages if isinstance(m, ToolMessage)}
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (call, result) of consecutive tool messages
    for message in request.messages:
        if isinstance(message, ToolMessage) and style != "template":
            # parse_request guarantees the id names an earlier call.
            pending.append((call_names[message.tool_call_id], content_text(message.content) or ""))
            continue
        if pending:
            out.append(_results_turn(pending, style))
            pending = []
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or []:
                call_names[call.id] = (
                    prose_call(call.function.name, json.loads(call.function.arguments))
                    if style == "prose"
                    else call.function.name
                )
            turn = _assistant(message, style, dialect, answered)
            if turn is not None:
                out.append(turn)
        elif isinstance(message, ToolMessage):
            out.append(_tool_result(message, call_names))
        else:
            role = "system" if message.role == "developer" else message.role
            out.append({"role": role, "content": content_text(message.content)})
    if pending:
        out.append(_results_turn(pending, style))
    return out


def _results_turn(results: list[tuple[str, str]], style: HistoryStyle) -> dict[str, Any]:
    if style == "prose":
        return prose_results_turn(results)
    return tool_result_turn([result for _, result in results])


def _assistant(
    message: AssistantMessage,
    style: HistoryStyle,
    dialect: type[ToolCallParser],
    answered: set[str],
) -> dict[str, Any] | None:
    """The assistant turn; in prose, calls with results are told with their results only
    (``prose_results_turn``): the small model copies an "I called …" turn as its answer."""
    text = content_text(message.content)
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]
    if not calls:
        return {"role": "assistant", "content": text or ""}
    if style == "prose" and all(call.id in answered for call in message.tool_calls or []):
        return {"role": "assistant", "content": text} if text else None
    if style != "template":
        written = prose_calls(calls) if style == "prose" else dialect.format_calls(calls)
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
