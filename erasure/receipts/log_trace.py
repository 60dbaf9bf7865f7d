"""A consistency proof checked step by step, as auditors read it on the checkpoints page.

The steps mirror merkle.verify_consistency (RFC 9162 section 2.1.4.2) line by line, recording
each hash they compute. The verdict shown is merkle.verify_consistency's own; the trace only
explains it, and says so if the two ever disagree.
"""
from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from erasure.verifier import merkle


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


@dataclass(frozen=True)
class Step:
    text: str
    hashes: tuple[tuple[str, str], ...] = ()  # (name, base64 hash) pairs computed or used in this step


@dataclass
class Trace:
    first: int
    second: int
    proof: list[bytes]
    steps: list[Step] = field(default_factory=list)
    consistent: bool = False  # merkle.verify_consistency's verdict
    trace_agrees: bool = True

    @property
    def path_offset(self) -> int:
        """1 when the older size is a power of two: the path then starts with the older root, not a proof hash."""
        return 1 if 0 < self.first < self.second and self.first & (self.first - 1) == 0 else 0

    def say(self, text: str, *hashes: tuple[str, bytes]) -> None:
        self.steps.append(Step(text, tuple((name, b64(h)) for name, h in hashes)))


def trace_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                      proof: Sequence[bytes]) -> Trace:
    trace = Trace(first, second, list(proof))
    trace.consistent = merkle.verify_consistency(first, second, first_root, second_root, list(proof))
    traced = _walk(trace, first, second, first_root, second_root, list(proof))
    trace.trace_agrees = traced == trace.consistent
    return trace


def _walk(t: Trace, first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]) -> bool:
    if not 0 < first <= second:
        t.say(f"The sizes must satisfy 0 < first ≤ second; {first} and {second} do not.")
        return False
    if first == second:
        same = first_root == second_root and not proof
        t.say(f"Both checkpoints are of size {first}: they are consistent if their roots are equal and the "
              f"proof is empty. Roots {'equal' if first_root == second_root else 'differ'}; "
              f"the proof has {len(proof)} hash{'es' if len(proof) != 1 else ''}.", ("old root", first_root),
              ("new root", second_root))
        return same
    if not proof:
        t.say("The proof is empty, but a smaller tree needs at least one hash to reach a larger one.")
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
        t.say(f"{first} is a power of two, so the old tree is one whole subtree of the new one: its root "
              "is the first node of the path.", ("path[0] = old root", first_root))
    fn, sn = first - 1, second - 1
    t.say(f"Start from the last leaf of each tree: fn = {first} − 1 = {fn} (binary {fn:b}), "
          f"sn = {second} − 1 = {sn} (binary {sn:b}).")
    shifted = 0
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
        shifted += 1
    if shifted:
        t.say(f"fn ends in {shifted} one bit{'s' if shifted != 1 else ''}: shift both right {shifted} "
              f"time{'s' if shifted != 1 else ''}, to fn = {fn}, sn = {sn}. Those levels lie inside one "
              "complete subtree.")
    fr = sr = path[0]
    t.say("Both running roots start at the first node of the path: fr = sr = path[0].", ("fr = sr", fr))
    for n, c in enumerate(path[1:], start=1):
        if sn == 0:
            t.say(f"sn reached 0 with hashes left over (path[{n}] onwards): the proof is too long.")
            return False
        if fn & 1 or fn == sn:
            fr, sr = merkle.node_hash(c, fr), merkle.node_hash(c, sr)
            climbed = 0
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
                climbed += 1
            t.say(f"path[{n}] is a left sibling of both trees' nodes (fn is odd, or fn = sn): "
                  f"fr = H(path[{n}], fr) and sr = H(path[{n}], sr)."
                  + (f" Then climb {climbed} level{'s' if climbed != 1 else ''} where fn is even." if climbed
                     else ""), (f"path[{n}]", c), ("fr", fr), ("sr", sr))
        else:
            sr = merkle.node_hash(sr, c)
            t.say(f"path[{n}] is a right sibling that only the new tree has (fn is even and fn ≠ sn): "
                  f"sr = H(sr, path[{n}]); fr stays.", (f"path[{n}]", c), ("sr", sr))
        fn, sn = fn >> 1, sn >> 1
        t.say(f"Up one level: fn = {fn}, sn = {sn}.")
    used_up = sn == 0
    t.say(f"The path is used up{' exactly: sn = 0' if used_up else f', but sn = {sn}, not 0: the proof is too short'}.")
    t.say(f"fr {'equals' if fr == first_root else 'does NOT equal'} the old checkpoint's root.",
          ("fr", fr), ("old root", first_root))
    t.say(f"sr {'equals' if sr == second_root else 'does NOT equal'} the new checkpoint's root.",
          ("sr", sr), ("new root", second_root))
    return used_up and fr == first_root and sr == second_root
