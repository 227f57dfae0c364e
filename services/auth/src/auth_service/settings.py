"""Auth service settings: environment variables prefixed `AUTH_`."""

from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.paths import run_dir
from common.settings import ServiceSettings

DEFAULT_ADMIN_PASSWORD = "admin-password"  # dev/test demo only: the seed refuses it when env=prod


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "auth"

    port: int = 8001

    # Time (common.timeouts): a sign-up hashes a password (Argon2id), which under load took
    # 9.6 s; the budget covers that, and stays below the gateway's attempt (GATEWAY_AUTH_TIMEOUT_S).
    request_timeout_s: float = Field(default=15.0, gt=0)
    db_lock_timeout_s: float = Field(default=5.0, gt=0)

    # The key signing user access tokens. Its own folder, never the service keys folder:
    # every .pub there is accepted as a service identity.
    user_token_keys_dir: Path = Field(default_factory=lambda: run_dir() / "keys" / "user-tokens")
    access_token_ttl_s: int = Field(default=900, ge=30, le=3600)
    refresh_token_ttl_s: int = Field(default=14 * 24 * 3600, ge=60)

    # Argon2id cost. Default: OWASP's Password Storage Cheat Sheet (m=19 MiB, t=2, p=1), ~22 ms
    # per hash on this project's 2-core reference box against ~125 ms for argon2-cffi's
    # m=64 MiB, t=3, p=4: sign-up and login cost a server CPU, so the floor is the fair price.
    # Raise both on stronger hardware; tests lower them; production may not go below the floor.
    password_hash_time_cost: int = Field(default=2, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=19456, ge=1024, le=4 * 1024 * 1024)

    # Login throttling (domain/login_throttle.py): failed logins allowed per sliding window, per
    # (account, client address), per address across accounts, per account across addresses
    # (generous; addresses the account logged in from before are exempt). Then 429 + Retry-After.
    login_pair_max_failures: int = Field(default=5, ge=1)
    login_pair_window_s: float = Field(default=300, gt=0)
    login_address_max_failures: int = Field(default=30, ge=1)
    login_address_window_s: float = Field(default=900, gt=0)
    login_account_max_failures: int = Field(default=100, ge=1)
    login_account_window_s: float = Field(default=900, gt=0)
    login_known_address_days: float = Field(default=30, ge=0)

    # The demo admin created by `python -m auth_service seed`.
    admin_email: str = "admin@example.com"
    admin_password: SecretStr = SecretStr(DEFAULT_ADMIN_PASSWORD)

    @model_validator(mode="after")
    def _strong_enough_in_prod(self) -> Self:
        if self.env == "prod" and (self.password_hash_memory_kib < 19456 or self.password_hash_time_cost < 2):
            raise ValueError("password hashing below OWASP's Argon2id minimum (19 MiB, 2 passes) in prod")
        return self
