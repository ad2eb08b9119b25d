"""The dialect registry maps card dialect names to parser classes."""

from __future__ import annotations

import pytest

from service.toolcalls import parser_class
from service.toolcalls.hermes import HermesParser
from service.toolcalls.llama3_json import Llama3JsonParser
from service.toolcalls.smollm2 import SmolLM2Parser


def test_known_dialects() -> None:
    assert parser_class("hermes") is HermesParser
    assert parser_class("smollm2") is SmolLM2Parser
    assert parser_class("llama3_json") is Llama3JsonParser


def test_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="mistral"):
        parser_class("mistral")
