"""Property-based fuzzing of both faces through the real stack: hostile requests get client-error
envelopes (never a 5xx), the keep-alive connection stays usable, and health stays fine.

Each example mutates a cheap valid request (``max_tokens: 1``) in one way: a field set to an
arbitrary JSON value, deep nesting, huge numbers, lone surrogates, odd tool schemas, raw bytes.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.proto.fncall.v1 import chat_pb2, chat_pb2_grpc
from tests.integration.conftest import API_KEY, QWEN
from tests.integration.serving import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = 200
CLIENT_ERRORS = {400, 401, 404, 413, 415, 429}
GRPC_CLIENT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
FIELDS = [
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stop",
    "n",
    "response_format",
    "stream",
]
BASE: dict[str, Any] = {
    "model": QWEN,
    "messages": [{"role": "user", "content": "Say hi."}],
    "max_tokens": 1,
}

text = st.text(alphabet=st.characters(codec=None), max_size=20)  # lone surrogates included
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
schema_keys = st.sampled_from(
    ["type", "properties", "required", "$ref", "$schema", "items", "enum", "const", "pattern"]
)
schemas = st.dictionaries(schema_keys, json_values, max_size=4).map(
    lambda schema: {"type": "object", **schema}
)


def _nested(depth: int) -> str:
    """JSON nested ``depth`` levels (as text: json.dumps itself recurses)."""
    return '{"k": [' * (depth // 2) + '"x"' + "]}" * (depth // 2)


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    body = json.loads(json.dumps(BASE))
    kind = draw(st.sampled_from(["field", "drop", "deep", "digits", "schema", "format", "raw"]))
    if kind == "field":
        body[draw(st.sampled_from(FIELDS))] = draw(json_values)
    elif kind == "drop":
        body.pop(draw(st.sampled_from(["model", "messages"])))
    elif kind == "deep":
        field = draw(st.sampled_from(["messages", "tools", "metadata"]))
        deep = _nested(draw(st.integers(60, 100_000)))
        return json.dumps(body)[:-1].encode() + f', "{field}": {deep}}}'.encode()
    elif kind == "digits":
        field = draw(st.sampled_from(["seed", "top_k", "max_tokens", "n", "temperature"]))
        digits = draw(st.integers(18, 6000))
        return json.dumps(body)[:-1].encode() + f', "{field}": 1{"0" * digits}}}'.encode()
    elif kind == "schema":
        name = draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
        body["tools"] = [
            {"type": "function", "function": {"name": name, "parameters": draw(schemas)}}
        ]
        body["tool_choice"] = draw(st.sampled_from(["auto", "required", "none"]))
    elif kind == "format":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": draw(schemas)},
        }
    else:
        return draw(st.binary(max_size=64))
    return json.dumps(body).encode("utf-8", "surrogatepass")


def _assert_envelope(response: httpx.Response) -> None:
    assert response.status_code == 200 or response.status_code in CLIENT_ERRORS, (
        response.status_code,
        response.text[:500],
    )
    if response.status_code != 200:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def rest(qwen_service: ServiceProcess) -> httpx.Client:
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=1)  # every example on one keep-alive connection
    with httpx.Client(
        base_url=qwen_service.url, headers=headers, limits=limits, timeout=120
    ) as client:
        yield client
        assert client.get("/health").status_code == 200


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=hostile_bodies())
def test_rest_answers_hostile_bodies_with_client_errors(rest: httpx.Client, body: bytes) -> None:
    _assert_envelope(rest.post("/v1/chat/completions", content=body))
    assert rest.get("/health").status_code == 200


@pytest.fixture(scope="module")
def grpc_channel(qwen_service: ServiceProcess) -> grpc.Channel:
    with grpc.insecure_channel(qwen_service.grpc_target) as channel:
        yield channel


def _grpc_requests() -> st.SearchStrategy[bytes]:
    valid = chat_pb2.ChatCompletionRequest(
        model=QWEN,
        messages=[chat_pb2.Message(role="user", content="Say hi.")],
        max_tokens=1,
    ).SerializeToString()
    raw = st.binary(max_size=128)
    cut = st.integers(0, len(valid) - 1).map(lambda n: valid[:n])
    spliced = st.tuples(st.binary(min_size=1, max_size=8), st.integers(0, len(valid))).map(
        lambda pair: valid[: pair[1]] + pair[0] + valid[pair[1] :]
    )
    return raw | cut | spliced


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=_grpc_requests())
def test_grpc_answers_hostile_messages_with_client_codes(
    grpc_channel: grpc.Channel, payload: bytes
) -> None:
    create = grpc_channel.unary_unary("/fncall.v1.ChatCompletions/Create")
    metadata = (("authorization", f"Bearer {API_KEY}"),)
    try:
        create(payload, metadata=metadata, timeout=120)
    except grpc.RpcError as error:
        assert error.code() in GRPC_CLIENT_CODES, (error.code(), error.details())
    stub = chat_pb2_grpc.ChatCompletionsStub(grpc_channel)
    stub.ListModels(chat_pb2.ListModelsRequest(), metadata=metadata, timeout=30)
