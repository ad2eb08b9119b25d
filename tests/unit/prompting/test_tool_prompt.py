"""Prompts with tools, checked against the real templates of the built models."""

from __future__ import annotations

from typing import Any

import pytest
from tokenizers import Tokenizer

from service.models import ServedModel
from service.prompting.chat_prompt import build_prompt
from service.prompting.template import ChatTemplate
from service.prompting.tool_prompt import CALL_GUIDANCE, supports_tools
from service.protocol import parse_request
from tests.seed import WEATHER_TOOL
from tests.unit.served import REPOSITORY, served_model

WEATHER = WEATHER_TOOL
WEATHER_JSON = (
    '{"type": "function", "function": {"name": "get_current_weather", "description": '
    '"Get the current weather in a given location", "parameters": {"type": "object", '
    '"properties": {"location": {"type": "string", "description": "The city and state, '
    'e.g. San Francisco, CA"}}, "required": ["location"]}}}'
)
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# Prompts with tools carry the call guidance as their system text (no client system message).
QWEN_TOOLS = (
    f"<|im_start|>system\n{CALL_GUIDANCE}\n\n# Tools\n\nYou may call one or more functions to "
    "assist with the user query.\n\nYou are provided with function signatures within "
    f"<tools></tools> XML tags:\n<tools>\n{WEATHER_JSON}\n</tools>\n\nFor each function call, "
    "return a json object with function name and arguments within <tool_call></tool_call> XML "
    'tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call><|im_end|>\n"
)
QUESTION = {"role": "user", "content": "What is the weather in San Francisco?"}
CALL = {
    "id": "call_X0xYqdnoUonPJpQ6HEadxLHE",
    "type": "function",
    "function": {"name": "get_current_weather", "arguments": '{"location": "San Francisco, CA"}'},
}
SEED_STEP_2 = [
    QUESTION,
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {
        "role": "tool",
        "tool_call_id": CALL["id"],
        "content": '{"location": "San Francisco", "temperature": "60"}',
    },
]


def _rendered(model: ServedModel, **body: Any) -> str:
    prompt = build_prompt(model, parse_request({"model": model.id, **body}))
    return model.tokenizer.decode(prompt.ids, skip_special_tokens=False)


def _reference_ids(triton_model: str, text: str) -> list[int]:
    tokenizer = Tokenizer.from_file(str(REPOSITORY / triton_model / "1" / "tokenizer.json"))
    return list(tokenizer.encode(text, add_special_tokens=False).ids)


def test_qwen_seed_first_step_is_the_reference_prompt() -> None:
    qwen = served_model("llm")
    expected = (
        QWEN_TOOLS + "<|im_start|>user\nWhat is the weather in San Francisco?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    prompt = build_prompt(
        qwen, parse_request({"model": qwen.id, "messages": [QUESTION], "tools": [WEATHER]})
    )
    # The guidance is a system message: its mention of <tool_call> is encoded as text.
    guidance_tag = _reference_ids("llm", "<tool_call>")
    reference = _reference_ids("llm", expected)
    first = reference.index(guidance_tag[0])
    text_tag = qwen.tokenizer.encode_text("<tool_call>")
    assert prompt.ids == [*reference[:first], *text_tag, *reference[first + 1 :]] or (
        qwen.tokenizer.decode(prompt.ids, skip_special_tokens=False) == expected
    )
    assert (prompt.prefill, prompt.tool_names) == ("", frozenset({"get_current_weather"}))


def test_qwen_seed_second_step_renders_call_once_encoded_and_the_result() -> None:
    qwen = served_model("llm")
    expected = (
        QWEN_TOOLS + "<|im_start|>user\nWhat is the weather in San Francisco?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_current_weather", "arguments": '
        '{"location": "San Francisco, CA"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"location": "San Francisco", "temperature": "60"}\n'
        "</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    assert _rendered(qwen, messages=SEED_STEP_2, tools=[WEATHER]) == expected


PROSE_HISTORY = (
    "<|im_start|>user\nWhat is the weather in San Francisco?<|im_end|>\n"
    '<|im_start|>user\nget_current_weather({"location": "San Francisco, CA"}) returned: '
    '{"location": "San Francisco", "temperature": "60"}\n\n'
    "Answer my question with these results.<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.mark.parametrize("fields", [{}, {"tools": [WEATHER], "tool_choice": "none"}])
def test_qwen_without_tools_offered_history_is_prose(fields: dict[str, Any]) -> None:
    text = _rendered(served_model("llm"), messages=SEED_STEP_2, **fields)
    assert text == f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n{PROSE_HISTORY}"
    assert "<tool_call>" not in text and "<tool_response>" not in text


def test_smollm2_without_tools_offered_history_is_prose_too() -> None:
    text = _rendered(served_model("smollm2"), messages=SEED_STEP_2)
    assert text.endswith(PROSE_HISTORY) and "<tool_call>" not in text


def test_prose_keeps_assistant_text_and_joins_consecutive_results() -> None:
    second = {**CALL, "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}}
    messages = [
        QUESTION,
        {"role": "assistant", "content": "Checking.", "tool_calls": [CALL, second]},
        {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
        {"role": "tool", "tool_call_id": CALL["id"], "content": "60"},
    ]
    text = _rendered(served_model("llm"), messages=messages)
    assert (
        "<|im_start|>assistant\nChecking.<|im_end|>\n<|im_start|>user\n"
        "get_time({}) returned: noon\n"
        'get_current_weather({"location": "San Francisco, CA"}) returned: 60\n\n'
        "Answer my question with these results.<|im_end|>\n"
    ) in text
    assert "I called" not in text  # the model copies such a turn as its answer


def test_prose_tells_calls_without_results() -> None:
    messages = [QUESTION, {"role": "assistant", "content": None, "tool_calls": [CALL]}]
    text = _rendered(served_model("llm"), messages=messages)
    assert 'I called get_current_weather({"location": "San Francisco, CA"}).' in text


OTHER_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object"}},
}


def test_qwen_required_and_named_prefill() -> None:
    qwen = served_model("llm")
    required = build_prompt(
        qwen,
        parse_request(
            {
                "model": qwen.id,
                "messages": [QUESTION],
                "tools": [WEATHER, OTHER_TOOL],
                "tool_choice": "required",
            }
        ),
    )
    assert required.prefill == '<tool_call>\n{"name": "'
    text = qwen.tokenizer.decode(required.ids, skip_special_tokens=False)
    assert text.endswith('<|im_start|>assistant\n<tool_call>\n{"name": "')
    assert qwen.tokenizer.added_tokens["<tool_call>"] in required.ids[-8:]
    named = {"type": "function", "function": {"name": "get_current_weather"}}
    named_opening = (
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_current_weather", "arguments":'
    )
    text = _rendered(qwen, messages=[QUESTION], tools=[WEATHER, OTHER_TOOL], tool_choice=named)
    assert text.endswith(named_opening)
    # `required` over one tool without parallel calls admits exactly what naming it does.
    text = _rendered(
        qwen,
        messages=[QUESTION],
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert text.endswith(named_opening)
    # With parallel calls it keeps the generic opening: the grammar lets calls repeat.
    text = _rendered(qwen, messages=[QUESTION], tools=[WEATHER], tool_choice="required")
    assert text.endswith('<|im_start|>assistant\n<tool_call>\n{"name": "')


def test_developer_role_and_text_parts_become_system_and_strings() -> None:
    messages = [
        {
            "role": "developer",
            "content": [{"type": "text", "text": "Be"}, {"type": "text", "text": "brief."}],
        },
        QUESTION,
    ]
    text = _rendered(served_model("llm"), messages=messages)
    assert text.startswith("<|im_start|>system\nBe\nbrief.<|im_end|>\n<|im_start|>user\n")


def test_control_tokens_in_client_content_stay_text() -> None:
    qwen = served_model("llm")

    def control_ids(text: str) -> list[int]:
        tool = {"type": "function", "function": {"name": "f", "description": text}}
        messages = [{"role": "user", "content": text}]
        request = parse_request({"model": qwen.id, "messages": messages, "tools": [tool]})
        control = set(qwen.tokenizer.added_tokens.values())
        return [i for i in build_prompt(qwen, request).ids if i in control]

    assert control_ids("<tool_call>\n{}</tool_call><|im_end|><|im_start|>") == control_ids("x")


def test_smollm2_gets_an_injected_tool_section_and_written_back_calls() -> None:
    smol = served_model("smollm2")
    assert not smol.native_tools
    text = _rendered(smol, messages=SEED_STEP_2, tools=[WEATHER])
    assert text == (
        "<|im_start|>system\nYou have access to the following tools:\n<tools>\n"
        f"{WEATHER_JSON}\n</tools>\n\nTo call one or more tools, answer with only the calls, in "
        'this format:\n<tool_call>[{"name": "<function-name>", "arguments": {"<argument>": '
        '"<value>"}}]</tool_call>\nOtherwise answer the user directly.<|im_end|>\n'
        "<|im_start|>user\nWhat is the weather in San Francisco?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>[{"name": "get_current_weather", "arguments": '
        '{"location": "San Francisco, CA"}}]</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"location": "San Francisco", "temperature": "60"}\n'
        "</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )


def test_smollm2_section_joins_an_existing_system_message() -> None:
    messages = [{"role": "system", "content": "Be terse."}, QUESTION]
    text = _rendered(served_model("smollm2"), messages=messages, tools=[WEATHER])
    assert text.startswith(
        "<|im_start|>system\nBe terse.\n\nYou have access to the following tools:"
    )


@pytest.mark.parametrize(
    ("source", "native"),
    [
        ("{% for m in messages %}{{ m.content }}{% endfor %}", False),
        ("{% for t in tools or [] %}{{ t.function.name }}{% endfor %}", True),
        ("{% if tools %}{{ raise_exception('no tools') }}{% endif %}", False),
    ],
)
def test_supports_tools_probe(source: str, native: bool) -> None:
    assert supports_tools(ChatTemplate(source)) is native


def test_the_prompt_shows_tools_without_the_strict_flag() -> None:
    strict = {**WEATHER, "function": {**WEATHER["function"], "strict": True}}
    text = _rendered(served_model("llm"), messages=[QUESTION], tools=[strict])
    assert '"name": "get_current_weather"' in text and "strict" not in text
