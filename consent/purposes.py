"""The purposes catalogue: what the platform may use data for, with versioned texts."""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from app.settings import ConfigError

KEY = re.compile(r"[a-z0-9_-]{1,64}")  # 64: the width of the ledger's purpose column
FIELDS = {"title": str, "version": int, "text": str, "gpc": bool, "sale": bool, "changes": str,
          "kept_after_leaving": str}
REQUIRED = ("title", "version", "text")


@dataclass(frozen=True)
class Purpose:
    key: str
    title: str
    version: int
    text: str
    gpc: bool = False  # a Global Privacy Control signal withdraws this purpose (e.g. sale or sharing)
    changes: str = ""  # what changed in this version, shown to people asked to consent again
    sale: bool = False  # sale or sharing: an authorized agent's sale:opt-out withdraws it, sale:opt-in gives it
    kept_after_leaving: str = ""  # what leaving cannot recall (partners keep what they got), said before "Leave"


class Purposes(Mapping[str, Purpose]):
    """An immutable mapping of purpose key to Purpose, in the file's order."""

    def __init__(self, purposes: Mapping[str, Purpose]) -> None:
        self._purposes = MappingProxyType(dict(purposes))

    def __getitem__(self, key: str) -> Purpose:
        return self._purposes[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._purposes)

    def __len__(self) -> int:
        return len(self._purposes)

    def __repr__(self) -> str:
        return f"Purposes({', '.join(f'{p.key}@v{p.version}' for p in self._purposes.values())})"


def load_purposes(path: Path) -> Purposes:
    """Read and validate the catalogue. Raises ConfigError naming the file, the purpose and the field."""
    where = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(where, "(file)", "the purposes file does not exist (see OWNSTORY_PURPOSES)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, "(file)", f"cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:  # its message gives the line and column
        raise ConfigError(where, "(file)", f"is not valid TOML: {exc}") from None

    extra = sorted(set(raw) - {"purposes"})
    if extra:
        raise ConfigError(where, extra[0], "unknown top-level key; only [purposes.<key>] tables belong here")
    table = raw.get("purposes")
    if not isinstance(table, dict) or not table:
        raise ConfigError(where, "purposes", "no purposes defined; add at least one [purposes.<key>] table")
    return Purposes({key: _purpose(where, key, entry) for key, entry in table.items()})


def _purpose(where: str, key: str, entry: object) -> Purpose:
    name = f"purposes.{key}"
    if not KEY.fullmatch(key):
        raise ConfigError(where, name, "a purpose key is 1 to 64 of a-z, 0-9, '_' and '-'")
    if not isinstance(entry, dict):
        raise ConfigError(where, name, "must be a table: [purposes.<key>] with title, version and text")
    for field in entry:
        if field not in FIELDS:
            raise ConfigError(where, f"{name}.{field}", f"unknown field; expected one of {', '.join(FIELDS)}")
    for field in REQUIRED:
        if field not in entry:
            raise ConfigError(where, f"{name}.{field}", "is required")
    for field, value in entry.items():
        kind = FIELDS[field]
        # bool is an int in Python; a version of `true` is still a mistake.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(where, f"{name}.{field}", f"must be {_KIND_NAMES[kind]}, got {value!r}")
        if isinstance(value, str) and field != "changes" and not value.strip():
            raise ConfigError(where, f"{name}.{field}", "must not be empty")
    if entry["version"] < 1:
        raise ConfigError(where, f"{name}.version", f"must be 1 or more, got {entry['version']}")
    return Purpose(
        key=key, title=entry["title"].strip(), version=entry["version"], text=entry["text"].strip(),
        gpc=entry.get("gpc", False), changes=entry.get("changes", "").strip(), sale=entry.get("sale", False),
        kept_after_leaving=entry.get("kept_after_leaving", "").strip(),
    )


_KIND_NAMES = {str: "a string", int: "a whole number", bool: "true or false"}
