"""Gateway settings: the JWKS follows auth's URL; a rate limit must parse."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway_service.settings import GatewaySettings


def test_jwks_url_follows_the_auth_url_unless_set(monkeypatch):
    assert GatewaySettings(env="test", auth_url="http://auth:9001/").jwks_url == (
        "http://auth:9001/.well-known/jwks.json"
    )
    monkeypatch.setenv("GATEWAY_JWKS_URL", "http://keys.example/jwks.json")
    assert (
        GatewaySettings(env="test", auth_url="http://auth:9001").jwks_url == "http://keys.example/jwks.json"
    )


def test_jwks_urls_follow_every_auth_instance():
    settings = GatewaySettings(env="test", auth_url="http://127.0.0.1:8001, http://127.0.0.1:8011")
    assert settings.jwks_url == (
        "http://127.0.0.1:8001/.well-known/jwks.json,http://127.0.0.1:8011/.well-known/jwks.json"
    )


def test_a_bad_upstream_url_list_is_refused_with_its_name():
    with pytest.raises(ValidationError, match="room_url"):
        GatewaySettings(env="test", room_url="http://127.0.0.1:8003,room:8013")


def test_rate_limit_is_read_from_the_environment_and_checked(monkeypatch):
    monkeypatch.setenv("GATEWAY_RATE_LIMIT", "20/second")
    assert GatewaySettings(env="test").rate_limit == "20/second"
    with pytest.raises(ValidationError, match="rate_limit"):
        GatewaySettings(env="test", rate_limit="lots")
