"""The slots of a max_in_flight that every worker process shares (erasure/engine/slots.py): on
PostgreSQL advisory locks, on an SQLite file record locks beside it; each let go when its process is SIGKILLed."""
from __future__ import annotations

import logging
import signal
import subprocess
import sys

import pytest

from app.db import make_engine
from app.settings import ROOT
from erasure.engine import slots as shared_slots
from tests.erasure.engine.helpers_processes import wait_for

# Another worker process, as far as the slots go: it takes `count` of the network "small"'s 2 and keeps them.
HOLDER = """
import sys, time
from app.db import make_engine
from erasure.engine import slots as shared_slots
slots = shared_slots.for_engine(make_engine(sys.argv[1]))
held = [slots.take("small", 2) for _ in range(int(sys.argv[2]))]
print("held" if all(held) else "missed", flush=True)
time.sleep(300)
"""


@pytest.fixture
def slots(database_url):
    engine = make_engine(database_url)
    yield shared_slots.for_engine(engine)
    engine.dispose()


@pytest.fixture
def other_worker(database_url):
    started: list[subprocess.Popen] = []

    def start(count: int) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLDER, database_url, str(count)],  # noqa: S603
                                   cwd=ROOT, stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_network_has_as_many_slots_as_it_takes_calls_and_a_slot_given_back_is_taken_again(slots):
    first, second = slots.take("small", 2), slots.take("small", 2)
    assert first is not None and second is not None  # two threads of one worker: one slot each
    assert slots.take("small", 2) is None
    other = slots.take("big", 2)
    assert other is not None  # another network's slots are its own
    other.release()
    first.release()
    third = slots.take("small", 2)
    assert third is not None and slots.take("small", 2) is None
    second.release()
    third.release()


def test_slots_another_worker_holds_are_free_again_once_it_is_killed(slots, other_worker):
    other = other_worker(1)
    mine = slots.take("small", 2)
    assert mine is not None
    assert slots.take("small", 2) is None  # one slot here, one in the other process: none left
    other.send_signal(signal.SIGKILL)  # no clean-up at all, as when a machine loses power
    other.wait()
    freed = wait_for(lambda: slots.take("small", 2), 10, "the killed worker's slot to be free")
    assert slots.take("small", 2) is None
    freed.release()
    mine.release()


def test_a_worker_whose_slots_are_all_held_elsewhere_takes_none(slots, other_worker):
    other_worker(2)
    assert slots.take("small", 2) is None
    third = slots.take("small", 3)  # a catalogue that says 3: the third is free
    assert third is not None
    third.release()


def test_the_slots_in_use_are_counted_across_processes_without_taking_any(slots, other_worker):
    # What the health page shows: every worker's calls at a network, read without taking a slot.
    assert slots.in_use({"small": 2, "big": 3}) == {"small": 0, "big": 0}
    other = other_worker(1)
    mine = slots.take("big", 3)
    assert mine is not None
    assert slots.in_use({"small": 2, "big": 3}) == {"small": 1, "big": 1}
    assert slots.in_use({"small": 2, "big": 3}) == {"small": 1, "big": 1}  # reading took nothing
    last = slots.take("small", 2)
    assert last is not None and slots.in_use({"small": 2}) == {"small": 2}
    last.release()
    mine.release()
    other.send_signal(signal.SIGKILL)
    other.wait()
    wait_for(lambda: slots.in_use({"small": 2, "big": 3}) == {"small": 0, "big": 0}, 10, "no slot in use")


def test_a_slots_file_that_cannot_be_opened_leaves_each_worker_to_its_own_limit_and_says_so(tmp_path, caplog):
    slots = shared_slots.FileSlots(tmp_path / "no such folder" / "ownstory.db.slots")
    with caplog.at_level(logging.WARNING, logger=shared_slots.__name__):
        taken = [slots.take("small", 1) for _ in range(3)]
    assert all(slot is not None for slot in taken)  # revocations go on; in_flight.py still caps each worker
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot open {tmp_path / 'no such folder' / 'ownstory.db.slots'} (No such file or directory): "
        "each worker keeps to max_in_flight on its own"]
    for slot in taken:
        slot.release()
    assert slots.in_use({"small": 1}) is None  # nothing to read: the health page says only the limit


def test_an_sqlite_file_named_as_a_path_or_as_a_uri_has_one_slots_file_and_a_database_in_memory_none(tmp_path):
    path = tmp_path / "ownstory.db"
    plain = shared_slots.for_engine(make_engine(f"sqlite:///{path}"))
    uri = shared_slots.for_engine(make_engine(f"sqlite:///file:{path}?mode=rwc&uri=true"))
    assert isinstance(plain, shared_slots.FileSlots) and isinstance(uri, shared_slots.FileSlots)
    assert plain.path == uri.path == tmp_path / "ownstory.db.slots"  # two workers, two spellings: one set of slots
    for memory in ("sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared&uri=true"):
        assert isinstance(shared_slots.for_engine(make_engine(memory)), shared_slots.LocalSlots), memory
