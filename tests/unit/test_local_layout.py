"""Where a local formation's members live on the network: 127.0.0.1, or one address each (netns)."""

from __future__ import annotations

import pytest

from patroni_citus.errors import ConfigurationError
from patroni_citus.local import network
from patroni_citus.local.layout import FormationLayout


def test_loopback_is_the_default_and_puts_everything_on_127_0_0_1() -> None:
    layout = FormationLayout("/tmp/f", workers=1, members=2, port_base=47800)
    assert {m.host for m in layout.all_members()} == {"127.0.0.1"}
    assert layout.host_address == "127.0.0.1" and layout.allowed_networks == "127.0.0.1/32"
    assert layout.coordinator_hosts() == "127.0.0.1:47900,127.0.0.1:47901"


def test_netns_gives_every_member_its_own_address_in_the_formations_subnet() -> None:
    layout = FormationLayout("/tmp/f", workers=8, members=9, port_base=47800, network="netns")
    hosts = [m.host for m in layout.all_members()]
    assert len(set(hosts)) == len(hosts) == 9 * 9
    assert all(host.startswith("10.213.222.") for host in hosts)  # 47800 // 100 % 256 == 222
    assert layout.host_address == "10.213.222.1" not in hosts
    assert layout.allowed_networks == "10.213.222.0/24"
    assert layout.member(1, 0).rest_url == "http://10.213.222.20:48010"
    assert layout.coordinator_dsn("citus", "postgres").startswith("host=10.213.222.10,10.213.222.11,")


def test_interface_names_fit_the_kernels_15_characters() -> None:
    layout = FormationLayout("/tmp/f", workers=8, members=9, port_base=65235, network="netns")
    names = [network.bridge(layout)] + [network.machine_link(layout, m) for m in layout.all_members()]
    assert max(len(name) for name in names) <= 15
    assert len(set(names)) == len(names)


def test_unknown_network_is_refused_naming_the_option() -> None:
    with pytest.raises(
        ConfigurationError, match=r"^--network='bridge' is invalid: use one of loopback, netns$"
    ):
        FormationLayout("/tmp/f", network="bridge")
