"""Request grammars (service.grammar) walked token by token through real llguidance matchers
(service.runtime.constraint) over a toy byte-level tokenizer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.errors import InvalidRequest
from service.grammar import MAX_CALLS, request_grammar, strict_schema
from service.prompting.tokenizer import PromptTokenizer
from service.protocol import parse_request
from service.runtime.constraint import GrammarCompiler
from service.runtime.scheduler import RequestError
from service.toolcalls import parser_class
from tests.unit.grammar.toy_tokenizer import toy_tokenizer_json

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["location"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}  # no parameters


def call(name: str, arguments: dict[str, Any], key: str = "arguments") -> str:
    return json.dumps({"name": name, key: arguments})


def tagged(*calls: str) -> str:
    return "\n".join(f"<tool_call>\n{c}\n</tool_call>" for c in calls)


PARIS = call("get_weather", {"location": "Paris", "unit": "c"})
NOW = call("get_time", {})


class Walker:
    """Builds a request's grammar for a dialect and checks texts against it."""

    def __init__(self, dialect: str = "hermes", added: list[str] | None = None) -> None:
        tokenizer_json = toy_tokenizer_json() if added is None else toy_tokenizer_json(added)
        self.tokenizer = PromptTokenizer(tokenizer_json)
        self.compiler = GrammarCompiler(tokenizer_json, vocab_size=300)
        self.syntax = parser_class(dialect).syntax

    def grammar(self, **body: Any) -> str | None:
        request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
        return request_grammar(parse_request(request), self.syntax, self.tokenizer)

    def accepts(self, grammar: str, text: str, prefill: str = "") -> bool:
        """Whether ``text`` is a whole answer: every token is allowed in turn, and the grammar
        then accepts, or goes on only with another call (``grammar.more``: an answer of calls
        goes on until the repeat guard stops it)."""
        if self.ends(grammar, text, prefill):
            return True
        syntax = self.syntax
        again = [syntax.block_separator + syntax.open, syntax.close + syntax.block_separator]
        return self.allows(grammar, text, prefill) and any(
            self.allows(grammar, text + more, prefill) for more in [*again, "\n"] if more
        )

    def ends(self, grammar: str, text: str, prefill: str = "") -> bool:
        """Whether every token of ``text`` is allowed in turn and the grammar then accepts."""
        constraint = self._walk(grammar, text, prefill)
        return constraint is not None and constraint.accepting()

    def allows(self, grammar: str, text: str, prefill: str = "") -> bool:
        """Whether every token of ``text`` is allowed in turn."""
        return self._walk(grammar, text, prefill) is not None

    def _walk(self, grammar: str, text: str, prefill: str) -> Any:
        prefill_ids = self.tokenizer.encode_rendered(prefill) if prefill else []
        constraint = self.compiler.constraint(grammar, prefill_ids)
        for token in self.tokenizer.encode_rendered(text):
            if not constraint.allowed()[token]:
                return None
            constraint.advance(token)
        return constraint


@pytest.fixture(scope="module")
def hermes() -> Walker:
    return Walker()


def test_required_admits_one_or_more_calls_to_any_tool(hermes: Walker) -> None:
    grammar = hermes.grammar(tools=[WEATHER, TIME], tool_choice="required")
    assert grammar is not None
    assert hermes.accepts(grammar, tagged(PARIS))
    assert hermes.accepts(grammar, tagged(NOW))  # the second tool too, not only the first
    assert hermes.accepts(grammar, tagged(NOW, PARIS))
    assert not hermes.accepts(grammar, "Sure, " + tagged(PARIS))
    assert not hermes.accepts(grammar, "")


@pytest.mark.parametrize("choice", ["auto", "required"])
def test_an_answer_of_calls_goes_on_after_each_call_up_to_max_calls(
    hermes: Walker, choice: str
) -> None:
    """The model ends after one call even when asked for several; the grammar asks it for
    the next one (the repeat guard stops the answer at the first call the parser drops)."""
    grammar = hermes.grammar(tools=[WEATHER, TIME], tool_choice=choice)
    assert grammar is not None
    assert not hermes.ends(grammar, tagged(PARIS))
    assert hermes.allows(grammar, tagged(PARIS) + "\n<tool_call>\n" + NOW)
    assert hermes.ends(grammar, tagged(*[PARIS] * MAX_CALLS))
    assert not hermes.allows(grammar, tagged(*[PARIS] * (MAX_CALLS + 1)))
    one = hermes.grammar(tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=False)
    assert one is not None
    assert hermes.ends(one, tagged(PARIS))
    named = {"type": "function", "function": {"name": "get_weather"}}
    single = hermes.grammar(tools=[WEATHER, TIME], tool_choice=named)
    assert single is not None
    assert hermes.ends(single, tagged(PARIS))


def test_the_last_block_may_end_unclosed_earlier_blocks_close(hermes: Walker) -> None:
    grammar = hermes.grammar(tools=[WEATHER, TIME], tool_choice="required")
    assert grammar is not None
    assert hermes.accepts(grammar, tagged(NOW, PARIS).removesuffix("\n</tool_call>"))
    assert not hermes.accepts(grammar, f"<tool_call>\n{NOW}\n<tool_call>\n{PARIS}")
    one = hermes.grammar(tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=False)
    assert one is not None
    assert hermes.accepts(one, f"<tool_call>\n{NOW}")


@pytest.mark.parametrize(
    "arguments",
    [
        {"unit": "c"},  # required field missing
        {"location": "Paris", "unit": "kelvin"},  # outside the enum
        {"location": "Paris", "days": 9},  # over the maximum
        {"location": "Paris", "days": 1.5},  # not an integer
        {"location": 3},  # wrong type
    ],
)
def test_required_rejects_arguments_outside_the_schema(hermes: Walker, arguments: dict) -> None:
    grammar = hermes.grammar(tools=[WEATHER, TIME], tool_choice="required")
    assert grammar is not None
    assert not hermes.accepts(grammar, tagged(call("get_weather", arguments)))


def test_unknown_names_and_extra_arguments_of_parameterless_tools_are_rejected(
    hermes: Walker,
) -> None:
    grammar = hermes.grammar(tools=[WEATHER, TIME], tool_choice="required")
    assert grammar is not None
    assert not hermes.accepts(grammar, tagged(call("get_wether", {"location": "x"})))
    assert not hermes.accepts(grammar, tagged(call("get_time", {"zone": "UTC"})))


def test_parallel_tool_calls_false_admits_exactly_one_call(hermes: Walker) -> None:
    grammar = hermes.grammar(
        tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=False
    )
    assert grammar is not None
    assert hermes.accepts(grammar, tagged(PARIS))
    assert not hermes.accepts(grammar, tagged(PARIS, NOW))


def test_named_choice_admits_only_that_tool(hermes: Walker) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    grammar = hermes.grammar(tools=[WEATHER, TIME], tool_choice=named)
    assert grammar is not None
    assert hermes.accepts(grammar, tagged(NOW))
    assert not hermes.accepts(grammar, tagged(PARIS))
    assert not hermes.accepts(grammar, tagged(NOW, NOW))


def test_the_prompt_prefill_is_fed_to_the_matcher_first(hermes: Walker) -> None:
    grammar = hermes.grammar(tools=[WEATHER, TIME], tool_choice="required")
    assert grammar is not None
    prefill = parser_class("hermes").required_prefill
    full = tagged(PARIS)
    assert hermes.accepts(grammar, full[len(prefill) :], prefill=prefill)
    with pytest.raises(RequestError, match="pre-filled"):
        hermes.compiler.constraint(grammar, hermes.tokenizer.encode_rendered("Hello"))


def test_auto_admits_text_or_valid_calls_only(hermes: Walker) -> None:
    grammar = hermes.grammar(tools=[WEATHER, TIME])
    assert grammar is not None
    assert hermes.accepts(grammar, "It is sunny in Paris.")
    assert hermes.accepts(grammar, tagged(PARIS))
    assert hermes.accepts(grammar, "Let me check.\n" + tagged(PARIS, NOW))
    assert hermes.accepts(grammar, PARIS)  # Qwen's bare-JSON habit, validated too
    # A call that starts must be completed validly:
    assert not hermes.accepts(grammar, tagged(call("get_weather", {"unit": "c"})))
    assert not hermes.accepts(grammar, call("launch", {}))
    assert not hermes.accepts(grammar, "\n " + call("launch", {}))
    assert hermes.accepts(grammar, '{"colors": ["red", "green"]}')  # JSON that is not a call
    assert not hermes.accepts(grammar, "Done.\n" + tagged(PARIS) + "\nBye")


def test_tool_choice_none_and_no_tools_need_no_grammar(hermes: Walker) -> None:
    assert hermes.grammar(tools=[WEATHER], tool_choice="none") is None
    assert hermes.grammar() is None
    unenforceable = {"type": "object", "properties": {"a": {"not": {"type": "string"}}}}
    hidden = {"type": "function", "function": {"name": "f", "parameters": unenforceable}}
    assert hermes.grammar(tools=[hidden], tool_choice="none") is None  # not in play: no 400


def test_response_formats_constrain_plain_answers(hermes: Walker) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    grammar = hermes.grammar(
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    )
    assert grammar is not None
    assert hermes.accepts(grammar, '{"name": "Ada", "age": 36}')
    assert not hermes.accepts(grammar, '{"name": "Ada"}')
    assert not hermes.accepts(grammar, '{"name": "Ada", "age": -1}')
    assert not hermes.accepts(grammar, "Ada is 36.")
    any_object = hermes.grammar(response_format={"type": "json_object"})
    assert any_object is not None
    assert hermes.accepts(any_object, '{"colors": ["red", "green"]}')
    assert not hermes.accepts(any_object, '["red"]')


def test_auto_with_a_response_format_admits_calls_or_the_format(hermes: Walker) -> None:
    grammar = hermes.grammar(tools=[WEATHER], response_format={"type": "json_object"})
    assert grammar is not None
    assert hermes.accepts(grammar, tagged(PARIS))
    assert hermes.accepts(grammar, '{"answer": 42}')
    assert not hermes.accepts(grammar, "plain text")


@pytest.mark.parametrize(
    ("body", "param", "keyword"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {
                "type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}}}]},
            "tools[0].function.parameters",
            "uniqueItems",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}}}},
            "response_format.json_schema.schema",
            '"if"',
        ),
    ],
)  # fmt: skip
def test_unenforceable_schema_keywords_are_a_400_naming_them(
    hermes: Walker, body: dict, param: str, keyword: str
) -> None:
    with pytest.raises(InvalidRequest) as error:
        hermes.grammar(**body)
    assert error.value.param == param
    assert keyword in str(error.value)


def test_textual_call_markers_cannot_hide_in_free_text() -> None:
    smollm2 = Walker("smollm2", added=["<|im_end|>"])  # <tool_call> is plain text here
    listed = "<tool_call>[" + PARIS + ", " + NOW + "]</tool_call>"
    required = smollm2.grammar(tools=[WEATHER, TIME], tool_choice="required")
    assert required is not None
    assert smollm2.accepts(required, listed)
    auto = smollm2.grammar(tools=[WEATHER, TIME])
    assert auto is not None
    assert smollm2.accepts(auto, "Calling it: " + listed)
    assert smollm2.accepts(auto, "No call needed.")
    assert not smollm2.accepts(auto, 'Calling it: <tool_call>[{"name": "launch"}]</tool_call>')


def test_llama3_json_calls_use_parameters_and_semicolons() -> None:
    llama = Walker("llama3_json", added=["<|eot_id|>"])
    grammar = llama.grammar(tools=[WEATHER, TIME], tool_choice="required")
    assert grammar is not None
    weather = call("get_weather", {"location": "Oslo"}, key="parameters")
    now = call("get_time", {}, key="parameters")
    assert llama.accepts(grammar, f"{weather}; {now}")
    assert not llama.accepts(grammar, call("get_weather", {"location": "Oslo"}))


def test_compiled_grammars_are_cached_by_content(hermes: Walker) -> None:
    compiler = GrammarCompiler(toy_tokenizer_json(), vocab_size=300, cache_size=1)
    grammar = hermes.grammar(tools=[WEATHER], tool_choice="required")
    other = hermes.grammar(tools=[TIME], tool_choice="required")
    assert grammar is not None and other is not None
    compiler.constraint(grammar)
    compiler.constraint(grammar)
    assert (compiler.stats.misses, compiler.stats.hits) == (1, 1)
    compiler.constraint(other)  # evicts the first (cache size 1)
    compiler.constraint(grammar)
    assert (compiler.stats.misses, compiler.stats.hits) == (3, 1)


def test_a_grammar_that_does_not_compile_is_an_invalid_request(hermes: Walker) -> None:
    with pytest.raises(RequestError) as error:
        hermes.compiler.constraint("start: undefined_rule\n")
    assert error.value.kind == "invalid"


def test_undeclared_properties_are_rejected_unless_the_schema_allows_them(
    hermes: Walker,
) -> None:
    grammar = hermes.grammar(tools=[WEATHER], tool_choice="required")
    assert grammar is not None
    invented = call("get_weather", {"location": "Paris", "required": ["location"]})
    assert not hermes.accepts(grammar, tagged(invented))
    open_schema = json.loads(json.dumps(WEATHER))
    open_schema["function"]["parameters"]["additionalProperties"] = True
    grammar = hermes.grammar(tools=[open_schema], tool_choice="required")
    assert grammar is not None
    assert hermes.accepts(grammar, tagged(invented))


def test_strict_schema_closes_nested_objects_that_declare_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "where": {"type": "object", "properties": {"city": {"type": "string"}}},
            "tags": {"type": "array", "items": {"type": "object", "properties": {}}},
            "meta": {"type": "object"},
            "extra": {"type": "object", "properties": {}, "additionalProperties": True},
        },
    }
    strict = strict_schema(schema)
    assert strict["additionalProperties"] is False
    properties = strict["properties"]
    assert properties["where"]["additionalProperties"] is False
    assert properties["tags"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in properties["meta"]  # free-form object stays free
    assert properties["extra"]["additionalProperties"] is True
    assert "additionalProperties" not in schema  # the request's schema is not changed


def test_auto_admits_bare_calls_one_a_line_or_tagged_calls(hermes: Walker) -> None:
    grammar = hermes.grammar(tools=[WEATHER, TIME])
    assert grammar is not None
    assert hermes.accepts(grammar, PARIS)
    assert hermes.accepts(grammar, f"{PARIS}\n{NOW}")
    assert hermes.accepts(grammar, tagged(PARIS, NOW))
    assert hermes.accepts(grammar, tagged(PARIS, NOW).removesuffix("\n</tool_call>"))
    assert not hermes.accepts(grammar, f"<tool_call>\n{PARIS}\n<tool_call>\n{NOW}")


def test_auto_text_never_spells_a_call_opening(hermes: Walker) -> None:
    """The tag token opens a call; the same tag written out in text (with or without
    attributes, as the 0.5B model sometimes does) would only leave markup in ``content``."""
    grammar = hermes.grammar(tools=[WEATHER, TIME])
    assert grammar is not None
    assert hermes.accepts(grammar, "Use a <tool> when needed.")
    assert not hermes.accepts(grammar, '<tool_call name="get_time" arguments="{}">')
    assert not hermes.accepts(grammar, "Calling it: <tool_call")
    for spelling in ("<toolCall>", "<Tool-Call>", "<TOOL CALL>", "<toolcall>", "<tool_result>"):
        assert not hermes.accepts(grammar, f"{spelling}\n{PARIS}"), spelling
    assert hermes.accepts(grammar, "A toolcall is a <b>tool</b> call; <tools> and <tool> too.")


def fenced(*calls: dict[str, Any]) -> str:
    """Calls as the 0.5B model fences them: indented JSON, one block each."""
    return "\n\n".join(f"```json\n{json.dumps(c, indent=2)}\n```" for c in calls)


PARIS_CALL = {"name": "get_weather", "arguments": {"location": "Paris", "unit": "c"}}
TOKYO_CALL = {"name": "get_weather", "arguments": {"location": "Tokyo"}}


def test_auto_admits_fenced_calls_opening_the_answer_and_asks_for_more(hermes: Walker) -> None:
    """An answer that opens with a fenced call is a call answer: schema-valid, indented as the
    model writes it, and it goes on with another fenced call (as tagged and bare ones do)."""
    grammar = hermes.grammar(tools=[WEATHER, TIME])
    assert grammar is not None
    assert hermes.allows(grammar, fenced(PARIS_CALL))
    assert not hermes.ends(grammar, fenced(PARIS_CALL))
    assert hermes.allows(
        grammar, fenced(PARIS_CALL, TOKYO_CALL, {"name": "get_time", "arguments": {}})
    )
    assert hermes.ends(grammar, fenced(*[PARIS_CALL] * MAX_CALLS))
    assert not hermes.allows(grammar, fenced(*[PARIS_CALL] * (MAX_CALLS + 1)))
    compact = f"```json\n{json.dumps(PARIS_CALL)}\n```"
    assert hermes.allows(grammar, compact)
    bad = {"name": "get_weather", "arguments": {"location": "Paris", "unit": "kelvin"}}
    assert not hermes.allows(grammar, fenced(bad))
    extra = {"name": "get_weather", "arguments": {"location": "Paris", "required": ["x"]}}
    assert not hermes.allows(grammar, fenced(extra))
    # Other fenced JSON, and fenced calls later in a text, stay free text.
    assert hermes.ends(grammar, '```json\n{"city": "Paris"}\n```')
    for other in ("John Doe", "get_news"):  # a name no offered tool has
        assert hermes.ends(grammar, fenced({"name": other, "arguments": {"location": "Paris"}}))
    assert hermes.ends(grammar, "Here it is:\n" + fenced(PARIS_CALL))
    one = hermes.grammar(tools=[WEATHER, TIME], parallel_tool_calls=False)
    assert one is not None
    assert hermes.ends(one, fenced(PARIS_CALL))
    assert not hermes.allows(one, fenced(PARIS_CALL, TOKYO_CALL))


def test_an_auto_answer_does_not_open_with_a_tag(hermes: Walker) -> None:
    """The 0.5B model wraps calls in tags of its own (``<tool>…</tool>``) that no parser
    reads; an answer may not open with ``<`` (tags later in the text stay text)."""
    grammar = hermes.grammar(tools=[WEATHER, TIME])
    assert grammar is not None
    for opening in ("<tool>", "<tools>", "<function>", " <b>", "<"):
        assert not hermes.allows(grammar, f"{opening}\n{PARIS}"), opening
    assert hermes.ends(grammar, "Bold is <b>, italics <i>.")
    none = hermes.grammar(tools=[WEATHER, TIME], tool_choice="none")
    assert none is None
