"""Pre-fills end on a token boundary of the call the model would write itself.

A pre-fill that splits one of the model's natural tokens (``": `` + `` {"`` instead of ``":`` +
`` {"``) puts the model off its training distribution right where the arguments start.
"""

from __future__ import annotations

import pytest

from service.toolcalls import DIALECTS, parser_class
from tests.unit.served import served_model

ARGUMENTS = {"location": "Paris, France"}


@pytest.mark.parametrize("triton_model", ["llm", "smollm2"])
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_prefill_ids_are_a_prefix_of_the_natural_call(triton_model: str, dialect: str) -> None:
    tokenizer = served_model(triton_model).tokenizer
    parser = parser_class(dialect)
    natural = parser.format_calls([("get_current_weather", ARGUMENTS)])
    natural_ids = tokenizer.encode_rendered(natural)
    for prefill in (parser.required_prefill, parser.named_prefill("get_current_weather")):
        assert natural.startswith(prefill)
        prefill_ids = tokenizer.encode_rendered(prefill)
        assert natural_ids[: len(prefill_ids)] == prefill_ids, prefill
