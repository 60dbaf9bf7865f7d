"""The receipt log's Merkle tree against RFC 9162 vectors and a reference that hashes every leaf."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erasure.verifier import merkle

MAX_SIZE = 300


# --- the reference: RFC 9162 2.1, written as the RFC writes it, over all leaf hashes --------------

def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = merkle._split(n)
    if m < k:
        return reference_path(m, leaves[:k]) + [merkle.root_from_leaves(leaves[k:])]
    return reference_path(m - k, leaves[k:]) + [merkle.root_from_leaves(leaves[:k])]


def reference_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [merkle.root_from_leaves(leaves)]
    k = merkle._split(n)
    if m <= k:
        return reference_subproof(m, leaves[:k], whole) + [merkle.root_from_leaves(leaves[k:])]
    return reference_subproof(m - k, leaves[k:], False) + [merkle.root_from_leaves(leaves[:k])]


def reference_consistency(first: int, leaves: list[bytes]) -> list[bytes]:
    if first == 0 or first == len(leaves):
        return []
    return reference_subproof(first, leaves, True)


class Store:
    """Nodes as the database keeps them, with a record of every read."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.reads: list[tuple[int, int]] = []
        self.size = 0

    def get(self, level: int, index: int) -> bytes:
        self.reads.append((level, index))
        return self.nodes[(level, index)]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        self.reads = []
        stored = merkle.nodes_to_store(self.size, leaf, self.get)
        assert set(self.reads) == set(merkle.needed_for_append(self.size))
        for level, index, value in stored:
            assert (level, index) not in self.nodes  # a stored node never changes
            self.nodes[(level, index)] = value
        self.size += 1
        return stored

    def reading(self, compute, *args):
        self.reads = []
        return compute(*args, self.get), set(self.reads)


def make_leaves(seed: int, n: int) -> list[bytes]:
    return [merkle.leaf_hash(hashlib.sha256(f"{seed}:{i}".encode()).digest()[: i % 40]) for i in range(n)]


def make_store(leaves: list[bytes]) -> Store:
    store = Store()
    for leaf in leaves:
        store.append(leaf)
    return store


# --- vectors from transparency-dev/merkle (testonly/constants.go, proof/verify_test.go) ----------

VECTOR_LEAVES = [bytes.fromhex(h) for h in
                 ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
VECTOR_NODES = {
    0: ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"],
    1: ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"],
    2: ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    3: ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
}
VECTOR_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, path); the Go file numbers leaves from 1
VECTOR_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
VECTOR_CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]


@pytest.fixture(scope="module")
def vector_store() -> Store:
    return make_store([merkle.leaf_hash(data) for data in VECTOR_LEAVES])


def test_stored_nodes_are_the_vectors_complete_subtrees(vector_store):
    expected = {(level, index): bytes.fromhex(h) for level, row in VECTOR_NODES.items() for index, h in enumerate(row)}
    assert vector_store.nodes == expected


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_vectors(vector_store, size):
    assert merkle.root(size, vector_store.get).hex() == VECTOR_ROOTS[size]
    assert merkle.root_from_leaves([merkle.leaf_hash(d) for d in VECTOR_LEAVES[:size]]).hex() == VECTOR_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), VECTOR_INCLUSION)
def test_inclusion_proofs_match_the_vectors(vector_store, index, size, path):
    proof = merkle.inclusion_proof(index, size, vector_store.get)
    assert [h.hex() for h in proof] == path
    root = bytes.fromhex(VECTOR_ROOTS[size])
    assert merkle.verify_inclusion(index, size, merkle.leaf_hash(VECTOR_LEAVES[index]), proof, root)


@pytest.mark.parametrize(("first", "second", "path"), VECTOR_CONSISTENCY)
def test_consistency_proofs_match_the_vectors(vector_store, first, second, path):
    proof = merkle.consistency_proof(first, second, vector_store.get)
    assert [h.hex() for h in proof] == path
    first_root, second_root = bytes.fromhex(VECTOR_ROOTS[first]), bytes.fromhex(VECTOR_ROOTS[second])
    assert merkle.verify_consistency(first, second, first_root, second_root, proof)


# --- appending ----------------------------------------------------------------------------------

def test_every_append_stores_what_the_reference_root_needs():
    leaves = make_leaves(7, MAX_SIZE)
    store = Store()
    for size, leaf in enumerate(leaves, start=1):
        stored = store.append(leaf)
        # the leaf, and one node for each subtree it completes
        assert len(stored) == 1 + ((size - 1) ^ size).bit_length() - 1
        root, reads = store.reading(merkle.root, size)
        assert root == merkle.root_from_leaves(leaves[:size])
        assert reads == set(merkle.needed_for_root(size))
        assert len(reads) == bin(size).count("1")
    assert len(store.nodes) == 2 * MAX_SIZE - bin(MAX_SIZE).count("1")


def test_the_empty_tree():
    assert merkle.root(0, lambda *_: pytest.fail("reads nothing")) == hashlib.sha256(b"").digest()
    assert merkle.needed_for_root(0) == []
    assert merkle.consistency_proof(0, 5, lambda *_: pytest.fail("reads nothing")) == []


@given(seed=st.integers(0, 2**32), data=st.lists(st.binary(max_size=64), min_size=1, max_size=40))
@settings(max_examples=50, deadline=None)
def test_appending_any_leaves_gives_the_reference_root(seed, data):
    leaves = [merkle.leaf_hash(d) for d in data]
    store = Store()
    for size, leaf in enumerate(leaves, start=1):
        store.append(leaf)
        assert merkle.root(size, store.get) == merkle.root_from_leaves(leaves[:size])


# --- proofs against the reference, for sizes 1 to 300 --------------------------------------------

sizes = st.integers(1, MAX_SIZE)


@st.composite
def size_and_index(draw):
    size = draw(sizes)
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw):
    second = draw(sizes)
    return draw(st.integers(0, second)), second


@given(seed=st.integers(0, 2**32), case=size_and_index())
@settings(max_examples=300, deadline=None)
def test_inclusion_proofs_match_the_reference(seed, case):
    size, index = case
    leaves = make_leaves(seed, size)
    store = make_store(leaves)
    proof, reads = store.reading(merkle.inclusion_proof, index, size)
    assert proof == reference_path(index, leaves)
    assert reads == set(merkle.needed_for_inclusion(index, size))
    root = merkle.root_from_leaves(leaves)
    assert merkle.verify_inclusion(index, size, leaves[index], proof, root)

    # and nothing else verifies
    assert not merkle.verify_inclusion(index, size, merkle.leaf_hash(b"another"), proof, root)
    if size > 1:
        assert not merkle.verify_inclusion((index + 1) % size, size, leaves[index], proof, root)
        for i in range(len(proof)):
            bent = list(proof)
            bent[i] = bytes([proof[i][0] ^ 1]) + proof[i][1:]
            assert not merkle.verify_inclusion(index, size, leaves[index], bent, root)
        assert not merkle.verify_inclusion(index, size, leaves[index], proof[:-1], root)
    assert not merkle.verify_inclusion(index, size, leaves[index], proof + [root], root)
    # (a proof can fit more than one size: 0 of 3 and 0 of 4 have the same shape; the checkpoint binds the size)
    assert not merkle.verify_inclusion(index, size * 2, leaves[index], proof, root)


@given(seed=st.integers(0, 2**32), case=two_sizes())
@settings(max_examples=300, deadline=None)
def test_consistency_proofs_match_the_reference(seed, case):
    first, second = case
    leaves = make_leaves(seed, second)
    store = make_store(leaves)
    proof, reads = store.reading(merkle.consistency_proof, first, second)
    assert proof == reference_consistency(first, leaves)
    assert reads == set(merkle.needed_for_consistency(first, second))
    first_root, second_root = merkle.root_from_leaves(leaves[:first]), merkle.root_from_leaves(leaves)
    assert merkle.verify_consistency(first, second, first_root, second_root, proof)

    if 0 < first < second:
        other = merkle.leaf_hash(b"rewritten history")
        assert not merkle.verify_consistency(first, second, other, second_root, proof)
        assert not merkle.verify_consistency(first, second, first_root, other, proof)
        assert not merkle.verify_consistency(first, second, second_root, first_root, proof)
        for i in range(len(proof)):
            bent = list(proof)
            bent[i] = bytes([proof[i][0] ^ 1]) + proof[i][1:]
            assert not merkle.verify_consistency(first, second, first_root, second_root, bent)
        assert not merkle.verify_consistency(first, second, first_root, second_root, proof[:-1])
        assert not merkle.verify_consistency(first, second, first_root, second_root, proof + [first_root])
        assert not merkle.verify_consistency(first, second, first_root, second_root, [])
        if first > 1:
            assert not merkle.verify_consistency(first - 1, second, first_root, second_root, proof)


def test_rewriting_a_leaf_breaks_consistency():
    leaves = make_leaves(3, 40)
    store = make_store(leaves)
    forged = make_store(leaves[:10] + [merkle.leaf_hash(b"forged")] + leaves[11:])
    proof = merkle.consistency_proof(20, 40, forged.get)
    assert not merkle.verify_consistency(20, 40, merkle.root(20, store.get), merkle.root(40, forged.get), proof)


# --- O(log n) reads ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 3, 1000, 2**20 - 1, 2**20, 1_000_000, 2**40 + 12345])
def test_proofs_read_logarithmically_many_nodes(size):
    depth = (size - 1).bit_length()
    assert len(merkle.needed_for_root(size)) <= depth + 1
    for index in {0, size // 3, size // 2, size - 2, size - 1} - {-1}:
        assert len(merkle.needed_for_inclusion(index, size)) <= 2 * depth
        assert len(merkle.inclusion_proof(index, size, lambda level, i: bytes(32))) <= depth
    for first in {1, size // 3, size // 2, size - 1} - {0}:
        assert len(merkle.needed_for_consistency(first, size)) <= 2 * depth + 1
    assert len(merkle.needed_for_append(size)) <= depth + 1


def test_a_million_leaf_proof_reads_at_most_forty_rows():
    needed = merkle.needed_for_inclusion(123_456, 1_000_000)
    assert len(needed) <= 40
    assert all(index < 1_000_000 >> level for level, index in needed)  # only complete subtrees


# --- garbage in --------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    (0, 0, bytes(32), [], bytes(32)),
    (1, 1, bytes(32), [], bytes(32)),
    (-1, 4, bytes(32), [], bytes(32)),
    (0, 1, bytes(31), [], bytes(31)),
    (0, 1, "not bytes", [], "not bytes"),
    (0, 2, bytes(32), [bytes(33)], bytes(32)),
    (0, 2, bytes(32), "not a list", bytes(32)),
    (0, 2, bytes(32), [bytes(32)] * 200, bytes(32)),
    (True, 2, bytes(32), [bytes(32)], bytes(32)),
    (0, 2**64, bytes(32), [bytes(32)], bytes(32)),
])
def test_verify_inclusion_refuses_garbage_without_raising(args):
    assert merkle.verify_inclusion(*args) is False


def test_verify_inclusion_of_a_single_leaf_tree():
    leaf = merkle.leaf_hash(b"data")
    assert merkle.verify_inclusion(0, 1, leaf, [], leaf)
    assert not merkle.verify_inclusion(0, 1, leaf, [leaf], leaf)


def test_verify_consistency_edge_cases():
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.verify_consistency(0, 0, a, a, [])
    assert merkle.verify_consistency(0, 5, a, b, [])  # the empty tree is a prefix of every tree
    assert not merkle.verify_consistency(0, 5, a, b, [a])
    assert merkle.verify_consistency(3, 3, a, a, [])
    assert not merkle.verify_consistency(3, 3, a, b, [])
    assert not merkle.verify_consistency(3, 3, a, a, [a])
    assert not merkle.verify_consistency(4, 3, a, b, [a])
    assert not merkle.verify_consistency(1, 2, a, b, [])
    assert not merkle.verify_consistency(1, 2, a, b, "ab")
    assert not merkle.verify_consistency(-1, 2, a, b, [a])


@pytest.mark.parametrize("call", [
    lambda: merkle.inclusion_proof(5, 5, lambda *_: bytes(32)),
    lambda: merkle.inclusion_proof(-1, 5, lambda *_: bytes(32)),
    lambda: merkle.consistency_proof(6, 5, lambda *_: bytes(32)),
    lambda: merkle.needed_for_root(-1),
    lambda: merkle.nodes_to_store(0, b"short", lambda *_: bytes(32)),
])
def test_impossible_requests_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
