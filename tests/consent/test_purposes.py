"""The purposes catalogue: the shipped file, and mistakes named by file, purpose and field."""
import dataclasses

import pytest

from app.settings import ROOT, ConfigError
from consent.purposes import load_purposes

GOOD = """
[purposes.scoring]
title = "Influence score"
version = 3
text = "We compute a score from your public posts."
changes = "Now counts reposts."

[purposes.partner-sale]
title = "Sale to partners"
version = 1
text = "We sell your score to partners."
gpc = true
"""


def test_the_shipped_catalogue_loads():
    purposes = load_purposes(ROOT / "config" / "purposes.toml")
    assert len(purposes) >= 3
    assert all(p.version >= 1 and p.title and p.text for p in purposes.values())
    assert any(p.gpc for p in purposes.values()), "a sale or sharing purpose that GPC withdraws"


def test_a_catalogue_reads_in_file_order(tmp_path):
    path = tmp_path / "purposes.toml"
    path.write_text(GOOD)
    purposes = load_purposes(path)
    assert list(purposes) == ["scoring", "partner-sale"]
    scoring, sale = purposes["scoring"], purposes["partner-sale"]
    assert (scoring.key, scoring.title, scoring.version, scoring.gpc, scoring.changes) == (
        "scoring", "Influence score", 3, False, "Now counts reposts.")
    assert (sale.gpc, sale.changes) == (True, "")


def test_the_catalogue_cannot_be_changed(tmp_path):
    path = tmp_path / "purposes.toml"
    path.write_text(GOOD)
    purposes = load_purposes(path)
    with pytest.raises(TypeError):
        purposes["other"] = purposes["scoring"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        purposes["scoring"].version = 4  # type: ignore[misc]


BROKEN = [
    ("", "purposes", "no purposes"),
    ("[purposes]\n", "purposes", "no purposes"),
    ('title = "x"\n', "title", "unknown top-level key"),
    ('[purposes.Scoring]\ntitle = "x"\nversion = 1\ntext = "y"\n', "purposes.Scoring", "a-z"),
    ('[purposes."a b"]\ntitle = "x"\nversion = 1\ntext = "y"\n', "purposes.a b", "a-z"),
    ('[purposes.s]\ntitle = "x"\nversion = 1\ntext = "y"\ncolour = "red"\n', "purposes.s.colour", "unknown field"),
    ('[purposes.s]\nversion = 1\ntext = "y"\n', "purposes.s.title", "is required"),
    ('[purposes.s]\ntitle = "x"\ntext = "y"\n', "purposes.s.version", "is required"),
    ('[purposes.s]\ntitle = "x"\nversion = "3"\ntext = "y"\n', "purposes.s.version", "whole number"),
    ('[purposes.s]\ntitle = "x"\nversion = true\ntext = "y"\n', "purposes.s.version", "whole number"),
    ('[purposes.s]\ntitle = "x"\nversion = 1.5\ntext = "y"\n', "purposes.s.version", "whole number"),
    ('[purposes.s]\ntitle = "x"\nversion = 0\ntext = "y"\n', "purposes.s.version", "1 or more"),
    ('[purposes.s]\ntitle = "x"\nversion = 1\ntext = "  "\n', "purposes.s.text", "must not be empty"),
    ('[purposes.s]\ntitle = 7\nversion = 1\ntext = "y"\n', "purposes.s.title", "a string"),
    ('[purposes.s]\ntitle = "x"\nversion = 1\ntext = "y"\ngpc = "yes"\n', "purposes.s.gpc", "true or false"),
    ('[purposes.s]\ntitle = "x"\nversion = 1\ntext = "y"\nchanges = []\n', "purposes.s.changes", "a string"),
    ('purposes = ["scoring"]\n', "purposes", "no purposes"),
    ('purposes.s = 1\n', "purposes.s", "must be a table"),
]


@pytest.mark.parametrize("text, field, problem", BROKEN, ids=[b[1] + ":" + b[2] for b in BROKEN])
def test_mistakes_name_the_file_and_field(tmp_path, text, field, problem):
    path = tmp_path / "purposes.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_purposes(path)
    assert caught.value.where == str(path)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_bad_toml_gives_the_line(tmp_path):
    path = tmp_path / "purposes.toml"
    path.write_text('[purposes.s]\ntitle = "x"\nversion = = 1\n')
    with pytest.raises(ConfigError) as caught:
        load_purposes(path)
    assert "not valid TOML" in str(caught.value) and "line 3" in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_purposes(path)
    assert str(path) in str(caught.value) and "does not exist" in str(caught.value)


def test_a_broken_catalogue_stops_start_up(make_app, write_purposes):
    path = write_purposes('[purposes.s]\ntitle = "x"\nversion = 0\ntext = "y"\n')
    with pytest.raises(ConfigError, match="purposes.s.version"):
        make_app(purposes=path)
