"""The address guard (job_tasks/fetching/guard.py).

Only IP literals and "localhost" are resolved here: getaddrinfo answers them without DNS.
The tests that make requests only ever target loopback addresses.
"""

import ipaddress
import socket
import time

import pytest

from job_tasks.fetching.fetch import Fetcher
from job_tasks.fetching.guard import AddressPolicy, blocked_reason, checked_addresses
from job_tasks.page_errors import BlockedAddress, ConnectionFailed, InvalidUrl
from job_tasks.settings import Settings

DEFAULT = AddressPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "0.0.0.0",
        "100.64.0.1",  # shared address space (carrier-grade NAT)
        "224.0.0.1",
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fec0::1",  # deprecated site-local
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address):
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("fec0::1", "site-local"),
    ],
)
def test_refusal_says_what_kind_of_address_it_is(address, kind):
    assert blocked_reason(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address):
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1"],
    ids=["dotted", "decimal", "octal", "hex-dotted", "hex", "short"],
)
def test_every_spelling_of_loopback_is_refused(host):
    with pytest.raises(BlockedAddress) as info:
        checked_addresses(host, 80, DEFAULT)

    assert info.value.code == "blocked_address"
    assert "loopback" in str(info.value)


@pytest.mark.parametrize("host", ["localhost", "::1", "[::1]", "10.0.0.1", "0.0.0.0"])
def test_local_hosts_are_refused(host):
    with pytest.raises(BlockedAddress):
        checked_addresses(host, 80, DEFAULT)


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("0x7f.0.0.1", "0x7f.0.0.1 is a loopback address"),  # an address, however written
        ("localhost", "localhost resolves to a loopback address"),  # a name
    ],
)
def test_refusal_names_the_host_never_the_address_it_resolved_to(host, said):
    with pytest.raises(BlockedAddress) as info:
        checked_addresses(host, 80, DEFAULT)

    assert info.value.message.startswith(said)
    assert "127.0.0.1" not in info.value.message
    assert "WORDCRAWL_ALLOWED_HOSTS" in info.value.message


def test_a_name_lookup_that_takes_too_long_stops_being_waited_for(monkeypatch):
    """getaddrinfo cannot be interrupted: the guard waits for it only as long as allowed."""
    real = socket.getaddrinfo

    def slow_for_names(host, *args, **kwargs):
        if not kwargs.get("flags"):  # the lookup of a name, not the parsing of an address
            time.sleep(2)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_for_names)
    started = time.monotonic()

    with pytest.raises(TimeoutError):
        checked_addresses("localhost", 80, DEFAULT, timeout=0.2)

    assert time.monotonic() - started < 1
    assert checked_addresses("127.0.0.1", 80, AddressPolicy(allow_private=True), timeout=0.2)


def test_public_ip_literal_passes():
    assert checked_addresses("8.8.8.8", 80, DEFAULT) == ["8.8.8.8"]


def test_allowed_host_and_port_pass():
    policy = AddressPolicy(allowed_hosts=frozenset({("127.0.0.1", 8001)}))

    assert checked_addresses("127.0.0.1", 8001, policy) == ["127.0.0.1"]


def test_allowed_host_on_another_port_is_refused():
    policy = AddressPolicy(allowed_hosts=frozenset({("127.0.0.1", 8001)}))

    with pytest.raises(BlockedAddress):
        checked_addresses("127.0.0.1", 8002, policy)


def test_allowed_host_is_matched_by_name_not_by_address():
    policy = AddressPolicy(allowed_hosts=frozenset({("localhost", 8001)}))

    assert checked_addresses("LocalHost", 8001, policy)
    with pytest.raises(BlockedAddress):
        checked_addresses("127.0.0.1", 8001, policy)


def test_allowed_ipv6_host_in_brackets_passes():
    policy = AddressPolicy(allowed_hosts=frozenset({("::1", 8001)}))

    assert checked_addresses("[::1]", 8001, policy) == ["::1"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.0.0.1", "169.254.169.254"])
def test_allow_private_lets_every_address_through(host):
    assert checked_addresses(host, 80, AddressPolicy(allow_private=True))


@pytest.mark.parametrize(
    "host",
    ["0x7f.1", "017700000001", "0177.1", "0x7F.0x0.0x0.0x1", "127.0.1", "127.255.255.254"],
)
def test_more_spellings_of_loopback_are_refused(host):
    with pytest.raises(BlockedAddress) as info:
        checked_addresses(host, 80, DEFAULT)

    assert f"{host} " in info.value.message  # the host as written, then what it is
    assert "loopback" in info.value.message


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6, as a URL would carry it
        ("[::ffff:127.0.0.1]", "loopback"),
        ("::ffff:7f00:1", "loopback"),  # the same, written in hex
        ("0:0:0:0:0:0:0:1", "loopback"),  # ::1 in full
        ("[::1]", "loopback"),
        ("0", "unspecified"),  # 0.0.0.0 in one number
        ("[::]", "unspecified"),
    ],
)
def test_ipv6_and_unspecified_spellings_are_refused(host, kind):
    with pytest.raises(BlockedAddress) as info:
        checked_addresses(host, 80, DEFAULT)

    assert kind in info.value.message


# Through the real transport. Nothing listens on PORT, so a request the guard lets through
# ends as a connection error; one it refuses ends as blocked_address without connecting.
# Every address here is loopback.


@pytest.fixture(scope="module")
def port() -> int:
    """A port of 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def fetcher(port) -> Fetcher:
    """A fetcher allowed to reach 127.0.0.1:PORT by name, and nothing else."""
    settings = Settings(
        allowed_hosts=frozenset({("127.0.0.1", port)}),
        connect_timeout=2,
        read_timeout=2,
        page_timeout=5,
    )
    return Fetcher(settings)


@pytest.mark.parametrize(
    ("url", "judged"),
    [
        ("http://127.0.0.2:{port}/", "127.0.0.2 is a loopback"),
        ("http://localhost:{port}/", "localhost resolves to a loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/", "::ffff:127.0.0.1 is a loopback"),  # IPv4-mapped
        ("http://[::1]:{port}/", "::1 is a loopback"),
        ("http://2130706433:{port}/", "2130706433 is a loopback"),  # decimal
        ("http://0x7f.1:{port}/", "0x7f.1 is a loopback"),  # hex, short form
        ("http://017700000001:{port}/", "017700000001 is a loopback"),  # octal
        ("http://0.0.0.0:{port}/", "0.0.0.0 is an unspecified"),
    ],
)
def test_the_guard_judges_the_host_the_request_goes_to(fetcher, port, url, judged):
    """Another spelling of the allowed host is refused, and the address is never shown."""
    with pytest.raises(BlockedAddress) as info:
        fetcher.fetch(url.format(port=port))

    assert judged in info.value.message
    assert "(" not in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}@127.0.0.2:{port}/",  # userinfo naming the allowed host
        "http://user:secret@127.0.0.1:{port}/",
        "http://user@127.0.0.1:{port}/",
        "http://127.0.0.2:{port}\\@127.0.0.1:{port}/",  # a backslash ends the host for urllib3
    ],
)
def test_a_url_with_userinfo_is_never_requested(fetcher, port, url):
    with pytest.raises(InvalidUrl) as info:
        fetcher.fetch(url.format(port=port))

    assert "secret" not in info.value.message


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/", "http://127.0.0.1.:{port}/"])
def test_the_allowed_host_is_let_through(fetcher, port, url):
    with pytest.raises(ConnectionFailed) as info:  # let through: it tried to connect
        fetcher.fetch(url.format(port=port))

    assert "refused" in info.value.message.lower()
