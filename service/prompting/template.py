"""Render a model's chat template (Jinja2) the way Hugging Face ``apply_chat_template`` does.

Templates are untrusted code: they run in an immutable sandbox with the helpers HF templates
expect (``raise_exception``, a ``tojson`` that does not HTML-escape, ``strftime_now``), with
``trim_blocks`` and ``lstrip_blocks`` on, as in transformers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from service.errors import InvalidRequest


def _raise_exception(message: str) -> NoReturn:
    """The template rejected the conversation: the client's mistake."""
    raise InvalidRequest(
        f"the chat template rejected the conversation: {message}", param="messages"
    )


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """HF's ``tojson``: plain ``json.dumps``, no HTML escaping, non-ASCII kept."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def _without_none(message: Mapping[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None (OpenAI's ``content: null``), as HF does: templates test for
    a missing key but would render ``None``."""
    return {key: value for key, value in message.items() if value is not None}


class ChatTemplate:
    """One compiled chat template plus the special tokens it may reference."""

    def __init__(self, source: str, bos_token: str | None = None, eos_token: str | None = None):
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._template = _environment().from_string(source)

    @classmethod
    def from_file(
        cls, path: Path, bos_token: str | None = None, eos_token: str | None = None
    ) -> ChatTemplate:
        """Load ``chat_template.jinja`` from a built model directory."""
        return cls(Path(path).read_text(encoding="utf-8"), bos_token, eos_token)

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt text for ``messages`` (OpenAI-shaped dicts) and optional ``tools``.

        Raises ``InvalidRequest`` when the template itself rejects the conversation
        (``raise_exception``); other Jinja errors are template bugs and propagate.
        """
        specials = {"bos_token": self.bos_token, "eos_token": self.eos_token}
        return self._template.render(
            messages=[_without_none(message) for message in messages],
            tools=None if tools is None else list(tools),
            add_generation_prompt=add_generation_prompt,
            **{name: token for name, token in specials.items() if token is not None},
        )
