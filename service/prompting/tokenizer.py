"""Prompt tokenization that only lets the chat template write control tokens.

``<|im_start|>``, ``<tool_call>`` or ``<|endoftext|>`` typed by a client (in any message, tool
call or tool definition) must reach the model as text, never as the control token. The approach,
like transformers' ``sanitize_control_tokens``:

1. every added-token string inside client-supplied strings is wrapped in private-use markers
   (markers already present in client text are dropped first, so they cannot be forged);
2. the template renders the marked conversation; added-token strings outside markers can only
   have come from the template itself;
3. the rendered text is split on those template tokens, which become their single ids; the text
   between two of them (template text and client text together, markers removed) is encoded by
   the BPE model alone, with no added-token matching.

BPE merges across piece boundaries: step 3 encodes each run between two template tokens as one
string, so template text and client text join exactly as in a plain ``tokenizer.encode`` of the
rendered prompt. For a conversation without control-token strings the ids therefore equal the
reference (HF ``apply_chat_template(tokenize=True)``); with them, the forged token is spelled as
the BPE pieces of its text. A marker split apart by a template string method is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from service.prompting.template import ChatTemplate

_START = "\ue000"
_END = "\ue001"


class PromptTokenizer:
    """Encode rendered chats safely and decode generated ids, over one ``tokenizer.json``."""

    def __init__(self, tokenizer_json: str):
        self.tokenizer_json = tokenizer_json  # for the grammar engine (service.grammar_check)
        self._full = Tokenizer.from_str(tokenizer_json)
        self._plain = Tokenizer.from_str(_without_added_tokens(tokenizer_json))
        self.added_tokens: dict[str, int] = {
            added.content: index for index, added in self._full.get_added_tokens_decoder().items()
        }
        alternatives = "|".join(map(re.escape, sorted(self.added_tokens, key=len, reverse=True)))
        self._added_re = re.compile(alternatives or "(?!)")
        self._marked_re = re.compile(f"{_START}({self._added_re.pattern}){_END}|[{_START}{_END}]")

    @classmethod
    def from_file(cls, path: Path) -> PromptTokenizer:
        """Load ``tokenizer.json``."""
        return cls(Path(path).read_text(encoding="utf-8"))

    def encode_text(self, text: str) -> list[int]:
        """Ids of ``text`` as plain text: added-token strings in it are not matched.
        (``encode_batch`` releases the GIL while it works; ``encode`` was measured holding it
        for 9 s on a 4 MB prompt, freezing the event loop's health checks.)"""
        if not text:
            return []
        return list(self._plain.encode_batch([text], add_special_tokens=False)[0].ids)

    def encode_chat(
        self,
        template: ChatTemplate,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> list[int]:
        """Render and encode a conversation; only the template's own control tokens are ids."""
        marked_tools = None if tools is None else [self._mark(tool) for tool in tools]
        rendered = template.render(
            [self._mark(message) for message in messages], marked_tools, add_generation_prompt
        )
        return self.encode_rendered(rendered)

    def encode_rendered(self, rendered: str) -> list[int]:
        """Encode a prompt rendered from marked inputs (see the module docstring)."""
        ids: list[int] = []
        text: list[str] = []
        for piece, token_id in self._pieces(rendered):
            if token_id is None:
                text.append(piece)
                continue
            ids += self.encode_text("".join(text))
            text.clear()
            ids.append(token_id)
        return ids + self.encode_text("".join(text))

    def split_added(self, text: str) -> list[tuple[str, int | None]]:
        """Server-written ``text`` as non-empty ``(text, None)`` runs and ``(token, id)`` added
        tokens, in order (how ``encode_rendered`` sees it)."""
        return [(piece, token_id) for piece, token_id in self._pieces(text) if piece]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``; special tokens dropped when ``skip_special_tokens``."""
        return str(self._full.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def _pieces(self, rendered: str) -> Iterator[tuple[str, int | None]]:
        """(text, None) runs and (token, id) template tokens, in order; markers removed."""
        for segment_index, segment in enumerate(self._marked_re.split(rendered)):
            if segment_index % 2 == 1:  # a marked client token (or None for a lone marker)
                if segment:
                    yield segment, None
                continue
            position = 0
            for match in self._added_re.finditer(segment):
                yield segment[position : match.start()], None
                yield match.group(), self.added_tokens[match.group()]
                position = match.end()
            yield segment[position:], None

    def _mark(self, value: Any) -> Any:
        """Wrap added-token strings in client data with markers (keys and values, recursively)."""
        if isinstance(value, str):
            clean = value.replace(_START, "").replace(_END, "")
            return self._added_re.sub(lambda m: f"{_START}{m.group()}{_END}", clean)
        if isinstance(value, Mapping):
            return {self._mark(key): self._mark(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._mark(item) for item in value]
        return value


def _without_added_tokens(tokenizer_json: str) -> str:
    """The same tokenizer with no added tokens: its BPE model sees all text as text."""
    data = json.loads(tokenizer_json)
    data["added_tokens"] = []
    return json.dumps(data)
