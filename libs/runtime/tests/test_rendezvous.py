"""Rendezvous hashing: every prober agrees, the load is even, and membership changes move few monitors."""

from __future__ import annotations

from collections import Counter

from fao.runtime.rendezvous import member_name, owner

MONITORS = [f"mon-{i}" for i in range(10_000)]


def _assign(members: list[str]) -> dict[str, str]:
    return {m: owner(m, members) for m in MONITORS}


def test_the_owner_does_not_depend_on_the_order_probers_are_listed() -> None:
    members = ["p-a", "p-b", "p-c"]
    assert _assign(members) == _assign(list(reversed(members)))


def test_monitors_spread_evenly_over_the_probers() -> None:
    counts = Counter(_assign([f"p{i}" for i in range(4)]).values())
    assert len(counts) == 4
    assert all(2300 <= n <= 2700 for n in counts.values()), counts  # 2,500 each expected


def test_a_joining_prober_takes_about_one_in_n_and_only_from_the_others() -> None:
    before = _assign(["p0", "p1", "p2"])
    after = _assign(["p0", "p1", "p2", "p3"])
    moved = [m for m in MONITORS if before[m] != after[m]]
    assert all(after[m] == "p3" for m in moved), "a join moves monitors only to the joiner"
    assert 0.22 <= len(moved) / len(MONITORS) <= 0.28, len(moved)  # 1/4 expected
    assert min(Counter(before[m] for m in moved).values()) > 0.28 * len(moved), "taken evenly from each"


def test_a_leaving_prober_gives_up_only_its_own_monitors() -> None:
    before = _assign(["p0", "p1", "p2"])
    after = _assign(["p0", "p2"])
    moved = {m for m in MONITORS if before[m] != after[m]}
    assert moved == {m for m in MONITORS if before[m] == "p1"}
    assert 0.30 <= len(moved) / len(MONITORS) <= 0.37, len(moved)  # 1/3 expected


def test_a_lone_prober_owns_everything() -> None:
    assert set(_assign(["only"]).values()) == {"only"}


def test_member_names_are_kv_key_safe() -> None:
    assert member_name("host.example.go.th-1234") == "host_example_go_th-1234"
    assert member_name("dev-dc1") == "dev-dc1"
