"""Grammars for constrained decoding: what the assistant turn may be, built from the request.

The grammar is an llguidance Lark grammar with inline JSON schemas (``%json {…}``) that covers
the whole assistant turn, including any pre-fill already in the prompt (the Triton model feeds
those tokens to the matcher first). Per ``tool_choice``:

- ``required``: one or more calls in the dialect's syntax (exactly one when
  ``parallel_tool_calls`` is false), each naming one of the tools, arguments valid against it;
- named: exactly one call of that tool;
- ``auto``: free text, or calls; the call grammar switches on at the dialect's opening (for
  Hermes/Qwen the ``<tool_call>`` token, or a bare ``{"name"`` or a fenced ```` ```json ````
  block holding one opening the answer), so a call that starts is always completed validly
  and names a declared tool;
- ``none`` / no tools: only ``response_format`` (``json_object`` / ``json_schema``) constrains.

Every call's arguments follow its tool's schema, whatever ``strict`` says (``strict`` asks for
exactly this), read as OpenAI's strict mode reads it: an object schema that declares
``properties`` and says nothing of ``additionalProperties`` admits no other properties
(``strict_schema``); a schema that allows them explicitly keeps that. JSON is written the way
the models write it (``", "`` and ``": "``, no other whitespace), so the model is never pushed
off its own style and cannot loop on whitespace.
Schema keywords llguidance cannot enforce are a 400 naming the keyword, never a silent drop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import jsonschema
from llguidance import LLMatcher

from service.errors import InvalidRequest
from service.prompting.tokenizer import PromptTokenizer
from service.protocol import ChatRequest, NamedToolChoice, ToolDefinition
from service.toolcalls.base import CallSyntax

# How JSON inside grammars is written (see the module docstring).
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
# Calls in one answer at most (``_Writer.more``): each one after the first must be new.
MAX_CALLS = 16
# Whitespace in a fenced call (``_Writer.fenced``): the model indents it, bounded so that it
# cannot loop on whitespace.
_WS = "[ \\n]{0,32}"
FENCED_JSON_STYLE = {"whitespace_flexible": True, "whitespace_pattern": _WS}
# How a fenced block opens: the answer's first; each one after.
_FENCE_FIRST = "```(json)?\\n"
_FENCE_NEXT = "\\n{1,2}```(json)?\\n"
# Arguments of a tool declared without ``parameters``: OpenAI reads that as no parameters.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def request_grammar(
    request: ChatRequest, syntax: CallSyntax, tokenizer: PromptTokenizer
) -> str | None:
    """The grammar of ``request``'s assistant turn, or ``None`` when nothing constrains it.

    Call markers that are one of the ``tokenizer``'s added tokens (Qwen's ``<tool_call>``) are
    matched as that token, as the model writes them.
    """
    choice = request.effective_tool_choice
    tools = (request.tools or []) if choice != "none" else []
    check_schemas(request, tools)
    content = _content_rule(request)
    if not tools:
        return None if content is None else _grammar({"start": content})
    writer = _Writer(syntax, tokenizer, one=not goes_on_after_calls(request))
    rules = {
        f"call_{index}": writer.call(tool)
        for index, tool in enumerate(tools)
        if not isinstance(choice, NamedToolChoice) or tool.function.name == choice.function.name
    }
    rules["call"] = " | ".join(sorted(rules))
    rules["calls"] = f"{writer.literal(syntax.open)} {writer.after_open()}".strip()
    if choice != "auto":
        return _grammar({"start": "calls", **rules})
    if content is not None:  # auto with a response format: calls, or the formatted answer
        return _grammar({"start": f"calls | {content}", **rules})
    names = [tool.function.name for tool in tools]
    return _grammar({**writer.auto(tools), **rules}, writer.text_lexeme(names))


def goes_on_after_calls(request: ChatRequest) -> bool:
    """Whether the grammar of ``request``'s calls asks for another call after each one
    (``_Writer.more``): several calls allowed, no function named."""
    choice = request.effective_tool_choice
    return request.parallel_tool_calls and not isinstance(choice, NamedToolChoice)


def check_schemas(request: ChatRequest, tools: Sequence[ToolDefinition]) -> None:
    """``InvalidRequest`` naming the field and keyword of a schema that cannot be enforced
    (among ``tools``, the request's tools in play, and its response format)."""
    for index, tool in enumerate(tools):
        _check_schema(arguments_schema(tool), f"tools[{index}].function.parameters")
    response_format = request.response_format
    if response_format is not None and response_format.type == "json_schema":
        _check_schema(response_format.schema_dict, "response_format.json_schema.schema")


ArgumentsCheck = Callable[[str, Mapping[str, Any]], bool]


def arguments_check(request: ChatRequest) -> ArgumentsCheck:
    """Whether a call's arguments are valid against its tool's schema (``jsonschema``): the
    parsers' last word, for call forms no grammar constrained (e.g. a fenced block)."""
    validators = {
        tool.function.name: jsonschema.validators.validator_for(schema)(schema)
        for tool in request.tools or []
        for schema in [arguments_schema(tool)]
    }

    def check(name: str, arguments: Mapping[str, Any]) -> bool:
        validator = validators.get(name)
        return validator is not None and bool(validator.is_valid(arguments))

    return check


def arguments_schema(tool: ToolDefinition) -> dict[str, Any]:
    """The JSON schema a call's arguments must match (strict: see ``strict_schema``)."""
    parameters = tool.function.parameters
    return NO_PARAMETERS if parameters is None else strict_schema(parameters)


# Keywords whose values are schemas, or lists / maps of schemas.
_SUBSCHEMA = ("items", "additionalProperties", "not", "contains", "if", "then", "else")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
# Keywords that already say which other properties an object takes.
_OPEN_KEYWORDS = ("additionalProperties", "patternProperties", "unevaluatedProperties")


def strict_schema(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object schema that declares
    ``properties`` and none of ``additionalProperties`` / ``patternProperties`` /
    ``unevaluatedProperties`` (the model otherwise invents fields, e.g. copies ``required``
    into the arguments). Schemas without ``properties`` stay free-form objects."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA:
        if key in out:
            out[key] = strict_schema(out[key])
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [strict_schema(item) for item in out[key]]
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: strict_schema(item) for name, item in out[key].items()}
    if isinstance(out.get("properties"), dict) and not any(k in out for k in _OPEN_KEYWORDS):
        out["additionalProperties"] = False
    return out


def _check_schema(schema: Mapping[str, Any], param: str) -> None:
    error = _schema_error(json.dumps(schema, sort_keys=True))
    if error:
        raise InvalidRequest(
            f"Invalid value for '{param}': constrained decoding cannot enforce this JSON "
            f"Schema: {error}.",
            param=param,
        )


@lru_cache(maxsize=512)
def _schema_error(schema_json: str) -> str:
    """llguidance's complaint about a schema (e.g. ``Unimplemented keys: ["uniqueItems"]``)."""
    try:
        grammar = LLMatcher.grammar_from_json_schema(_styled(json.loads(schema_json)))
    except ValueError as exc:
        return str(exc)
    return LLMatcher.validate_grammar(grammar).strip()


def _styled(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with our JSON style as its llguidance options."""
    options = dict(schema.get("x-guidance") or {}) | JSON_STYLE
    return {**schema, "x-guidance": options}


def _json(schema: Mapping[str, Any]) -> str:
    return "%json " + json.dumps(_styled(schema), ensure_ascii=False)


def _content_rule(request: ChatRequest) -> str | None:
    """The rule body of a ``response_format``-constrained answer, if any."""
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return _json({"type": "object"})
    return _json(response_format.schema_dict)


def _grammar(rules: Mapping[str, str], *lexemes: str) -> str:
    lines = ["%llguidance {}", f"start: {rules['start']}"]
    lines += [f"{name}: {body}" for name, body in rules.items() if name != "start"]
    return "\n".join([*lines, *lexemes]) + "\n"


class _Writer:
    """Lark pieces of one dialect's call syntax."""

    def __init__(self, syntax: CallSyntax, tokenizer: PromptTokenizer, *, one: bool):
        self._syntax = syntax
        self._tokenizer = tokenizer
        self._one = one  # exactly one call

    def literal(self, text: str) -> str:
        """``text`` as Lark items: added tokens as token ids, the rest as strings."""
        return " ".join(
            _string(piece) if token_id is None else f"<[{token_id}]>"
            for piece, token_id in self._tokenizer.split_added(text)
        )

    def call(self, tool: ToolDefinition) -> str:
        """One call object of ``tool``: name fixed, arguments per its schema."""
        name = json.dumps(tool.function.name)
        head = f'{{"name": {name}, "{self._syntax.arguments_key}": '
        return f"{_string(head)} {_json(arguments_schema(tool))} {_string('}')}"

    def after_open(self) -> str:
        """The calls after the first opening. With one call per block, the last block's
        closing is optional: the small Qwen models often end at the call's ``}`` (the parsers
        accept that). Where several calls are allowed, the answer goes on after each call
        until it has ``MAX_CALLS`` (see ``more``)."""
        syntax = self._syntax
        close = self.literal(syntax.close)
        if syntax.separator:  # all calls in one block
            more = "" if self._one else f" ({_string(syntax.separator)} call)*"
            return f"call{more} {close}".strip()
        if not close:
            return "call"
        if self._one:
            return f"call ({close})?"
        between = " ".join(
            part
            for part in (close, _string(syntax.block_separator), self.literal(syntax.open))
            if part
        )
        return f"call {self.more(between)} ({close})?"

    @staticmethod
    def more(between: str) -> str:
        """The calls after the first, each after ``between``: ``MAX_CALLS - 1`` of them.

        The 0.5B model ends after its first call even when the question asks for several
        (end of turn at p > 0.95); asked for one more, it writes the next place of the
        question, and once none is left it repeats one or invents one. So the grammar never
        ends an answer of calls early: ``service.toolcalls.repeats`` stops it at the first
        call the parser drops (a repeat, or a call not grounded in the question or not new),
        and the parser drops that call from the answer. ``MAX_CALLS`` bounds an answer whose
        calls all stay new."""
        return f"({between} call){{{MAX_CALLS - 1}}}"

    def auto(self, tools: Sequence[ToolDefinition]) -> dict[str, str]:
        """Rules of free text or calls. A call opening that is one added token (Qwen's
        ``<tool_call>``) cannot occur in text; a textual opening ends the text lazily (at its
        first occurrence); calls without an opening, or Hermes' bare ones (one a line), make up
        the whole answer. Bare lines are how the 0.5B model writes several calls in ``auto``,
        and also how it loops; ``service.toolcalls.repeats`` cuts the loops."""
        syntax = self._syntax
        if not syntax.open:
            return {"start": "TEXT | calls"}
        if not self._is_token(syntax.open):
            opening = "/(.|\\n)*" + _regex(syntax.open) + "/"
            return {
                "start": "TEXT | opened",
                "opened": f"opening {self.after_open()}",
                "opening[lazy]": opening,
            }
        rules: dict[str, str] = {}
        bare = ""
        if syntax.bare:
            bare = " | call" if self._one else f" | call {self.more(_string(chr(10)))}"
        if syntax.fenced:
            bare += " | fenced"
            rules |= self.fenced(tools)
        return {"start": f"TEXT | TEXT? calls{bare}", **rules}

    def fenced(self, tools: Sequence[ToolDefinition]) -> dict[str, str]:
        """Rules of an answer of ```` ```json ```` blocks, one call each, as the 0.5B model
        often writes its calls: JSON indented its way, the name one of ``tools``, arguments
        per its schema. Where several calls are allowed the answer goes on with another block
        after each (as ``more``).

        A block's head, from its fence up to the tool's name, is one lexeme: free text that
        opens the same way ends exactly where it names a tool (``text_lexeme``), so
        ``{"name": "John Doe", …}`` stays text. The rest of the block is one rule per tool,
        shared by the first block and the next ones."""
        rules: dict[str, str] = {}
        key = _regex(f'"{self._syntax.arguments_key}"')
        for index, tool in enumerate(tools):
            schema = {**_styled(arguments_schema(tool)), "x-guidance": FENCED_JSON_STYLE}
            rules[f"fenced_rest_{index}"] = (
                f"/{_WS},{_WS}{key}{_WS}:{_WS}/ "
                f"%json {json.dumps(schema, ensure_ascii=False)} /{_WS}\\}}{_WS}```/"
            )
        for part, fence in (("first", _FENCE_FIRST), ("next", _FENCE_NEXT)):
            for index, tool in enumerate(tools):
                head = _fenced_head(fence, [tool.function.name])
                rules[f"fenced_{part}_{index}"] = f"/{head}/ fenced_rest_{index}"
            rules[f"fenced_{part}"] = " | ".join(f"fenced_{part}_{i}" for i in range(len(tools)))
        more = "" if self._one else f" fenced_next{{{MAX_CALLS - 1}}}"
        return rules | {"fenced": f"fenced_first{more}"}

    def text_lexeme(self, names: Sequence[str]) -> str:
        """Free text: never opens with a bare call (``{"name"``, whitespace allowed) where the
        dialect reads bare calls, never holds a call opening spelled out in text (where the
        opening is an added token, as Qwen's ``<tool_call>``, the token itself is the
        ``opening`` rule and stays allowed; its spelling in plain text pieces would only leave
        unparsed call markup in ``content``)."""
        text = r"/(.|\n)+/"
        syntax = self._syntax
        if syntax.bare or not syntax.open:
            text += r' & ~/\s*\{\s*"name"(.|\n)*/'
        if syntax.fenced:
            text += rf" & ~/{_fenced_head(_FENCE_FIRST, names)}(.|\n)*/"
        opening = syntax.open.strip()
        if opening.startswith("<") and opening.endswith(">"):
            # A tag opening is matched by its first word, loosely: the 0.5B model also spells
            # it with attributes (``<tool_call name="…">``), in camel case or with a hyphen
            # (``<toolCall>``, ``<tool-call>``), or as another tag of its own
            # (``<tool_result>``, ``<tool_name>``) around a call, none of which a parser reads.
            # Nor does an answer open with a tag (``<`` at its start): wrapping its calls in
            # ``<tool>``, ``<tools>``, the 0.5B model writes them in a form no parser reads;
            # kept from that, it writes the fenced or tagged calls the grammar asks to go on.
            text += rf" & ~/(.|\n)*{_loose_tag(opening[:-1])}(.|\n)*/ & ~/\s*<(.|\n)*/"
        elif opening:
            text += rf" & ~/(.|\n)*{_regex(opening)}(.|\n)*/"
        return f"TEXT: {text}"

    def _is_token(self, text: str) -> bool:
        """Whether ``text`` starts with an added token."""
        pieces = self._tokenizer.split_added(text)
        return bool(pieces) and pieces[0][1] is not None


def _regex(text: str) -> str:
    """``text`` escaped for a Lark ``/regex/``."""
    return re.escape(text).replace("/", r"\/")


def _fenced_head(fence: str, names: Sequence[str]) -> str:
    """A regex of a fenced call's head: ``fence``, then ``{"name": "`` and one of ``names``."""
    alternatives = "|".join(_regex(json.dumps(name)) for name in names)
    return rf'{fence}\{{{_WS}"name"{_WS}:{_WS}({alternatives})'


def _loose_tag(tag: str) -> str:
    """A regex of ``tag`` (``<tool_call``) up to its first ``_`` in any letter case, then
    ``_``, ``-``, a space or nothing and a letter: ``<toolCall``, ``<tool-call``,
    ``<tool_result`` (``<tool>`` and ``<tools>`` stay text)."""
    head, separator, _ = tag.partition("_")
    out = [f"[{c.lower()}{c.upper()}]" if c.isalpha() else _regex(c) for c in head]
    if separator:
        out.append(r"([_\- ][a-zA-Z]|[a-rt-zA-Z])")
    return "".join(out)


def _string(text: str) -> str:
    """A Lark string literal."""
    return json.dumps(text, ensure_ascii=False)
