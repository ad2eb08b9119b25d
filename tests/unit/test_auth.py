"""API keys compared as digests; missing and wrong keys are distinct 401s."""

import pytest

from service.auth import ApiKeys
from service.errors import Unauthenticated


def test_disabled_accepts_anything() -> None:
    ApiKeys([]).check(None)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_api_key"),
        ("", "missing_api_key"),
        ("Basic k1", "missing_api_key"),
        ("Bearer ", "missing_api_key"),
        ("Bearer k3", "invalid_api_key"),
        ("Bearer k1x", "invalid_api_key"),
    ],
)
def test_rejected(header: str | None, code: str) -> None:
    with pytest.raises(Unauthenticated) as err:
        ApiKeys(["k1", "k2"]).check(header)
    assert err.value.code == code


def test_accepted() -> None:
    keys = ApiKeys(["k1", "k2"])
    keys.check("Bearer k2")
    keys.check("bearer k1")
