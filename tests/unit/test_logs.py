"""JSON logs carry the request id; incoming request ids are kept only when sane."""

import json
import logging

import pytest

from service.logs import REQUEST_ID, configure_logging, new_request_id


def test_json_lines_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("info", "json")
        token = REQUEST_ID.set("rid-42")
        try:
            logging.getLogger("service.test").info("hello %s", "world")
        finally:
            REQUEST_ID.reset(token)
        logging.getLogger("service.test").warning("outside")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "hello world" and first["request_id"] == "rid-42"
    assert first["level"] == "info" and first["logger"] == "service.test"
    assert first["time"].endswith("Z")
    assert second["request_id"] == "-" and second["level"] == "warning"


def test_request_ids() -> None:
    assert new_request_id("abc-1") == "abc-1"
    for bad in (None, "", "x" * 200, "bad\nid"):
        fresh = new_request_id(bad)
        assert fresh != bad and len(fresh) == 32
