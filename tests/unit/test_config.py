"""``fncall serve`` settings: flags over FNCALL_* environment variables over defaults."""

from pathlib import Path

from service.config import Settings, load_settings


def test_defaults() -> None:
    settings = load_settings([], env={})
    assert settings == Settings()
    assert settings.embedded


def test_environment_then_flags() -> None:
    env = {
        "FNCALL_PORT": "9000",
        "FNCALL_MODELS": "llm, smollm2",
        "FNCALL_API_KEYS": "a,b",
        "FNCALL_TRITON_URL": "triton:8001",
        "FNCALL_BUILD": "0",
    }
    settings = load_settings(["--port", "9100", "--api-key", "c", "--repository", "/m"], env=env)
    assert settings.port == 9100
    assert settings.models == ("llm", "smollm2")
    assert settings.api_keys == ("c", "a", "b")
    assert settings.triton_url == "triton:8001"
    assert not settings.embedded
    assert not settings.build
    assert settings.repository == Path("/m")


def test_api_keys_are_not_in_the_repr() -> None:
    assert "secret" not in repr(load_settings(["--api-key", "secret"], env={}))


def test_responses_store_flags() -> None:
    assert (Settings().responses_store_size, Settings().responses_store_ttl_s) == (1000, 3600.0)
    env = {"FNCALL_RESPONSES_STORE_SIZE": "10", "FNCALL_RESPONSES_STORE_TTL": "60"}
    settings = load_settings([], env)
    assert (settings.responses_store_size, settings.responses_store_ttl_s) == (10, 60.0)
    settings = load_settings(["--responses-store-size", "0", "--responses-store-ttl", "5"], env)
    assert (settings.responses_store_size, settings.responses_store_ttl_s) == (0, 5.0)
