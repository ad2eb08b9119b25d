"""The sandboxed chat-template renderer, and its agreement with HF ``apply_chat_template``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError

from service.errors import InvalidRequest
from service.modelbuild.gguf_metadata import read_gguf_metadata
from service.modelbuild.tokenizer import gguf_tokenizer
from service.prompting.template import ChatTemplate
from tests.unit.models import QWEN, SMOLLM, packaged_gguf
from tests.unit.prompting.conversations import PLAIN_CONVERSATION, TOOL_CONVERSATION, TOOLS


def test_tojson_keeps_html_and_unicode() -> None:
    template = ChatTemplate("{{ tools | tojson }}|{{ tools[0] | tojson(indent=2) }}")
    rendered = template.render([], [{"d": "<b>東京</b> & 'x'"}])
    assert rendered.startswith('[{"d": "<b>東京</b> & \'x\'"}]|{\n  "d"')


def test_raise_exception_is_a_client_error() -> None:
    template = ChatTemplate(
        "{% if messages[0].role != 'user' %}{{ raise_exception('no') }}{% endif %}"
    )
    with pytest.raises(InvalidRequest, match="rejected the conversation: no") as caught:
        template.render([{"role": "assistant", "content": "x"}])
    assert caught.value.param == "messages"


def test_sandbox_blocks_attribute_escapes() -> None:
    template = ChatTemplate("{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}")
    with pytest.raises(SecurityError):
        template.render([{"role": "user", "content": "x"}])


def test_none_values_are_dropped_and_specials_passed() -> None:
    template = ChatTemplate(
        "{{ bos_token }}{% for m in messages %}{{ m.content is defined }}{% endfor %}"
        "{{ eos_token is defined }}{{ strftime_now('%Y') | length }}",
        bos_token="<s>",
    )
    rendered = template.render([{"role": "assistant", "content": None}])
    assert rendered == "<s>FalseFalse4"


def test_generation_prompt_and_trim_blocks() -> None:
    template = ChatTemplate(
        "{% for m in messages %}\n  [{{ m.role }}]\n{% endfor %}\n"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    assert template.render([{"role": "user", "content": ""}]) == "  [user]\n[assistant]"
    assert template.render([], add_generation_prompt=False) == ""


@pytest.fixture(scope="module", params=[QWEN, SMOLLM])
def packaged(request: pytest.FixtureRequest) -> tuple[Path, str, Any]:
    """The GGUF, its chat template, and the transformers reference tokenizer."""
    transformers = pytest.importorskip("transformers")
    path = packaged_gguf(request.param)
    template = gguf_tokenizer(read_gguf_metadata(path)).chat_template
    assert template is not None
    reference = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return path, template, reference


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize("with_tools", [True, False])
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_matches_reference(
    packaged: tuple[Path, str, Any], with_tools: bool, generation_prompt: bool
) -> None:
    path, source, reference = packaged
    tools = TOOLS if with_tools else None
    template = ChatTemplate(source, reference.bos_token, reference.eos_token)
    for messages in _conversations_for(path):
        expected = reference.apply_chat_template(
            messages, tools=tools, add_generation_prompt=generation_prompt, tokenize=False
        )
        assert template.render(messages, tools, generation_prompt) == expected


def _conversations_for(path: Path) -> list[list[dict[str, Any]]]:
    """SmolLM2's template concatenates ``content`` and knows no tool calls."""
    if "SmolLM2" in path.name:
        return [PLAIN_CONVERSATION]
    return [TOOL_CONVERSATION, PLAIN_CONVERSATION]
