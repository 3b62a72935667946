"""Storage options: what every SQLite table paca-otel writes shares (the encryption key)."""

from __future__ import annotations

from pydantic import SecretStr

from paca_otel.config._source import OptionGroup, _env


class StorageOptions(OptionGroup):
    """Encryption at rest for alert state, the outbox and sensitive history."""

    # --- storage (H4b: paca_otel/storage) ----------------------------------------------------
    storage_key: SecretStr | None = _env(
        "storage_key", default=None,
        description="key encrypting stored alert state and notifications (AES-GCM; never logged)",
    )  # fmt: skip
