"""A worker's calls under way at each network or service (erasure/engine/in_flight.py): at most its max_in_flight,
those at their limit named for the claim, and a waiting step that keeps its lease or gives up its place."""
from __future__ import annotations

import threading

import pytest

from erasure.engine import in_flight
from erasure.engine.in_flight import Capped, InFlight

SMALL = ("revoke", "rfc7009")  # a network's revocations, as busy() names them for the claim


def limited(limit: int | None) -> Capped | None:
    """A small network's revocations, taking `limit` calls at once (None: no limit, as the worker passes it)."""
    return None if limit is None else Capped(*SMALL, limit)


class LeaseLost(Exception):
    pass


def test_a_network_without_a_limit_is_never_waited_for_nor_named_busy():
    gate, network = InFlight(wake_seconds=0.01), limited(None)
    with gate.call(network, keep_lease=lambda: pytest.fail("nothing waits")), \
            gate.call(network, keep_lease=lambda: pytest.fail("nothing waits")):
        assert gate.busy() == frozenset()


def test_a_step_over_the_limit_waits_keeping_its_lease_until_a_call_ends():
    gate, network = InFlight(wake_seconds=0.01), limited(2)
    renewals = []
    third_in = threading.Event()

    def third() -> None:
        with gate.call(network, keep_lease=lambda: renewals.append(1)):
            third_in.set()

    with gate.call(network, keep_lease=lambda: pytest.fail("its turn was free")):
        assert gate.busy() == frozenset()  # one of two
        with gate.call(network, keep_lease=lambda: pytest.fail("its turn was free")):
            assert gate.busy() == {SMALL}  # the claim passes its revocations over
            waiting = threading.Thread(target=third)
            waiting.start()
            assert not third_in.wait(0.2)  # two under way: the third waits ...
            assert len(renewals) >= 5  # ... renewing its lease every wake
        waiting.join(5)  # a call ended: its turn
        assert third_in.is_set()
    assert gate.busy() == frozenset()


def test_a_step_that_loses_its_lease_while_waiting_gives_up_its_place():
    gate, network = InFlight(wake_seconds=0.01), limited(1)

    def lost() -> None:
        raise LeaseLost

    with gate.call(network, keep_lease=lambda: None):
        with pytest.raises(LeaseLost), gate.call(network, keep_lease=lost):
            pytest.fail("a step whose lease was lost must not run")
        assert gate.busy() == {SMALL}  # the one under way still counts
    assert gate.busy() == frozenset()
    with gate.call(network, keep_lease=lambda: pytest.fail("the slot was given back")):
        pass


def test_a_claim_that_found_nothing_but_the_busy_networks_revocations_is_not_made_again_at_once(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(in_flight.time, "monotonic", lambda: clock[0])
    gate, network = InFlight(wake_seconds=0.01), limited(1)
    assert gate.to_pass_over() == frozenset()  # nothing busy: claim as ever
    gate.claimed(frozenset(), short=True)
    assert gate.to_pass_over() == frozenset()  # a short claim that passed nothing over says nothing
    with gate.call(network, keep_lease=lambda: None):
        busy = gate.to_pass_over()
        assert busy == {SMALL}
        gate.claimed(busy, short=True)  # nothing else was due
        assert gate.to_pass_over() is None  # so no claim for a second
        clock[0] += 1.0
        assert gate.to_pass_over() == busy
        gate.claimed(busy, short=True)
        clock[0] += 1.5
        assert gate.to_pass_over() is None  # then two seconds, doubling ...
        clock[0] += 0.5
        gate.claimed(gate.to_pass_over(), short=False)  # ... until a claim finds what it asked for
        assert gate.to_pass_over() == busy
        for _ in range(10):
            gate.claimed(busy, short=True)
        clock[0] += in_flight.LOOK_AGAIN_MAX
        assert gate.to_pass_over() == busy  # never longer than LOOK_AGAIN_MAX
    assert gate.to_pass_over() == frozenset()  # no network busy: claims go on


def test_with_fewer_networks_busy_than_when_a_claim_came_back_short_the_next_claim_is_made(monkeypatch):
    monkeypatch.setattr(in_flight.time, "monotonic", lambda: 1000.0)
    gate = InFlight(wake_seconds=0.01)
    small, smaller = limited(1), Capped("purge", "smaller", 1)
    with gate.call(small, keep_lease=lambda: None):
        with gate.call(smaller, keep_lease=lambda: None):
            gate.claimed(gate.to_pass_over(), short=True)  # both busy, nothing else due
            assert gate.to_pass_over() is None
        # a call at one of them ended: a claim passing over the other may find the first's next revocation
        assert gate.to_pass_over() == {SMALL}


class HeldElsewhere:
    """The slots every worker process shares, all held by another process until `free` is set."""

    def __init__(self) -> None:
        self.free = threading.Event()
        self.released = 0

    def take(self, network: str, limit: int):
        return self if self.free.is_set() else None

    def release(self) -> None:
        self.released += 1


def test_a_step_whose_slots_other_workers_hold_waits_keeping_its_lease_and_claims_pass_its_network_over():
    shared = HeldElsewhere()
    gate, network = InFlight(wake_seconds=0.05, shared=shared), limited(2)
    renewals: list[int] = []
    went = threading.Event()

    def step() -> None:
        with gate.call(network, keep_lease=lambda: renewals.append(1)):
            went.set()

    waiting = threading.Thread(target=step)
    waiting.start()
    assert not went.wait(0.6)  # this worker has one call of two there, but the other workers have both
    assert gate.busy() == {SMALL}  # so its claims take no more of that network's revocations meanwhile
    assert len(renewals) >= 3  # and the step keeps its lease while it waits
    shared.free.set()
    waiting.join(5)
    assert went.is_set() and shared.released == 1
    assert gate.busy() == frozenset()
