"""What erasure services need from the configured app, gathered once and passed as an argument."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from app.mail import Mailer
from app.security import Vault
from consent.networks import Networks
from consent.purposes import Purposes
from consent.suppression import Peppers
from erasure.stores.datamap import DataMap


@dataclass(frozen=True)
class ErasureContext:
    vault: Vault
    peppers: Peppers
    networks: Networks
    purposes: Purposes
    datamap: DataMap
    mailer: Mailer
    base_url: str
    log_origin: str
    deadline_days: int


def context_from_app(app: Flask) -> ErasureContext:
    return ErasureContext(
        vault=app.extensions["ownstory_vault"],
        peppers=app.extensions["ownstory_peppers"],
        networks=app.extensions["networks"],
        purposes=app.extensions["purposes"],
        datamap=app.extensions["datamap"],
        mailer=app.extensions["ownstory_mailer"],
        base_url=app.config["BASE_URL"],
        log_origin=app.config["LOG_ORIGIN"],
        deadline_days=app.config["ERASURE_DEADLINE_DAYS"],
    )


def outbox_path(app: Flask) -> Path:
    return Path(app.config.get("OUTBOX_PATH") or Path(app.instance_path) / "outbox")
