"""Package locks from apt simulations: what would be installed, what changed."""

from __future__ import annotations

from pipeline.build.freshness import (
    delta,
    label_value,
    lock_text,
    parse_lock,
    parse_simulation,
    pending_upgrades,
)

SIMULATION = """Reading package lists...
Building dependency tree...
Calculating upgrade...
The following packages will be upgraded:
  libssl3
Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u1 Debian-Security:12/oldstable-security [amd64])
Conf libssl3 (3.0.17-1~deb12u1 Debian-Security:12/oldstable-security [amd64])
Inst postgresql-common (248+deb12u1 Debian:12.15/oldstable [all])
Inst postgresql-15 (15.20-0+deb12u1 Debian-Security:12/oldstable-security [amd64])
Conf postgresql-15 (15.20-0+deb12u1 Debian-Security:12/oldstable-security [amd64])
"""


def test_simulation_gives_every_install_and_upgrade_with_versions() -> None:
    assert parse_simulation(SIMULATION) == {
        "libssl3": "3.0.17-1~deb12u1",
        "postgresql-common": "248+deb12u1",
        "postgresql-15": "15.20-0+deb12u1",
    }
    assert pending_upgrades(SIMULATION) == {"libssl3": ("3.0.15-1~deb12u1", "3.0.17-1~deb12u1")}


def test_nothing_to_do_is_empty() -> None:
    text = "Reading package lists...\n0 upgraded, 0 newly installed, 0 to remove.\n"
    assert parse_simulation(text) == {} and pending_upgrades(text) == {}


def test_lock_and_label_round_trip_sorted() -> None:
    versions = {"b": "2", "a": "1:1.0-1"}
    assert lock_text(versions) == "a=1:1.0-1\nb=2\n"
    assert parse_lock(lock_text(versions)) == versions
    assert label_value(versions) == "a=1:1.0-1,b=2"
    assert parse_lock(label_value(versions)) == versions


def test_delta_names_each_changed_package() -> None:
    old = {"libssl3": "3.0.15-1~deb12u1", "gone": "1", "same": "1"}
    new = {"libssl3": "3.0.17-1~deb12u1", "added": "2", "same": "1"}
    assert delta(old, new) == [
        "added (none) -> 2",
        "gone 1 -> (removed)",
        "libssl3 3.0.15-1~deb12u1 -> 3.0.17-1~deb12u1",
    ]
