"""RFC 9162 (RFC 6962) Merkle trees over the receipt log, stored as complete subtrees for O(log n) proofs.

The log keeps one node per complete (perfect) subtree: node (level, index) is the hash of leaves
[index * 2**level, (index + 1) * 2**level). Appending a leaf adds the leaf and every subtree it completes,
so the table holds about 2n rows and never changes a row once written. Any hash the RFC algorithms need is
either such a node or a subtree on the right edge of the tree, which is composed from at most log2(n)
nodes. The `needed_*` functions name every node a computation will read, so that the database layer can
fetch them in one query; the computations then call `get(level, index)` only for those nodes.

Standard library only: the offline verifier imports this module.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 2.1.1: the hash of an empty list is HASH()
MAX_PROOF_HASHES = 128  # two per level of a 2**64 tree; anything longer is garbage

Node = tuple[int, int]  # (level, index)
Get = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of RFC 9162 2.1.1, computed naively from every leaf hash: the reference the rest is tested against."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_from_leaves(leaf_hashes[:k]), root_from_leaves(leaf_hashes[k:]))


# --- appending ----------------------------------------------------------------------------------

def needed_for_append(size_before: int) -> list[Node]:
    """The nodes `nodes_to_store` reads: the left siblings of the subtrees the new leaf completes."""
    _check_size(size_before)
    needed = []
    level, index = 0, size_before
    while index & 1:
        needed.append((level, index - 1))
        level, index = level + 1, index >> 1
    return needed


def nodes_to_store(size_before: int, new_leaf_hash: bytes, get: Get) -> list[tuple[int, int, bytes]]:
    """The nodes completed by appending leaf number `size_before`: the leaf itself, then each subtree it closes."""
    _check_size(size_before)
    _check_hash(new_leaf_hash)
    level, index, acc = 0, size_before, new_leaf_hash
    stored = [(0, index, acc)]
    while index & 1:
        acc = node_hash(get(level, index - 1), acc)
        level, index = level + 1, index >> 1
        stored.append((level, index, acc))
    return stored


# --- roots and proofs ---------------------------------------------------------------------------

def needed_for_root(size: int) -> list[Node]:
    _check_size(size)
    return _pieces(0, size)


def root(size: int, get: Get) -> bytes:
    """The tree head at `size`: the perfect subtrees of the tree's binary decomposition, folded from the right."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, get)


def needed_for_inclusion(index: int, size: int) -> list[Node]:
    return _needed(_inclusion_ranges(index, size))


def inclusion_proof(index: int, size: int, get: Get) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 2.1.3.1, ordered from the leaf to the root."""
    return [_range_hash(start, end, get) for start, end in _inclusion_ranges(index, size)]


def needed_for_consistency(first: int, second: int) -> list[Node]:
    return _needed(_consistency_ranges(first, second))


def consistency_proof(first: int, second: int, get: Get) -> list[bytes]:
    """PROOF(first, D[second]) of RFC 9162 2.1.4.1; empty when first is 0 or equals second."""
    return [_range_hash(start, end, get) for start, end in _consistency_ranges(first, second)]


# --- verification -------------------------------------------------------------------------------

def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2. Returns False, never raises, on any malformed argument."""
    if not (_is_count(index) and _is_count(size) and index < size):
        return False
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_proof(proof)):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2. An empty tree is consistent with any tree; equal sizes need equal roots and no proof."""
    if not (_is_count(first) and _is_count(second) and first <= second):
        return False
    if not (_is_hash(first_root) and _is_hash(second_root) and _is_proof(proof)):
        return False
    if first == 0:
        return len(proof) == 0
    if first == second:
        return len(proof) == 0 and first_root == second_root
    if len(proof) == 0:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # first is a power of two: its root is a node on the path, left implicit
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


# --- internals ----------------------------------------------------------------------------------

def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up PATH(index, D[size]), leaf to root."""
    _check_size(size)
    if not (isinstance(index, int) and 0 <= index < size):
        raise ValueError(f"leaf index {index!r} is not in a tree of size {size}")
    ranges = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up PROOF(first, D[second]) = SUBPROOF(first, D[second], true)."""
    _check_size(first)
    _check_size(second)
    if first > second:
        raise ValueError(f"first size {first} is larger than second size {second}")
    if first == 0 or first == second:
        return []
    ranges = []
    start, end, m, whole = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                ranges.append((start, end))
            break
        k = _split(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    ranges.reverse()
    return ranges


def _pieces(start: int, end: int) -> list[Node]:
    """The perfect subtrees that tile [start, end), largest first.

    Only called for ranges the RFC recursion produces: a perfect subtree, or a subtree on the right edge,
    whose start is aligned to a power of two at least as large as the range.
    """
    pieces = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        pieces.append((level, start >> level))
        start += 1 << level
    return pieces


def _range_hash(start: int, end: int, get: Get) -> bytes:
    """MTH(D[start:end]) from stored nodes: a right fold of the range's perfect pieces."""
    hashes = [get(level, index) for level, index in _pieces(start, end)]
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _needed(ranges: list[tuple[int, int]]) -> list[Node]:
    needed: dict[Node, None] = {}
    for start, end in ranges:
        for node in _pieces(start, end):
            needed[node] = None
    return list(needed)


def _check_size(size: int) -> None:
    if not _is_count(size):
        raise ValueError(f"tree size {size!r} is not a non-negative integer below 2**64")


def _check_hash(value: bytes) -> None:
    if not _is_hash(value):
        raise ValueError("a node hash is 32 bytes")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_proof(proof: object) -> bool:
    return (
        isinstance(proof, (list, tuple))
        and len(proof) <= MAX_PROOF_HASHES
        and all(_is_hash(p) for p in proof)
    )
