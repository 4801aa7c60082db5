"""Keep crawls off private networks: the address guard (docs/reference.md, "What is refused").

A URL from a student could name the database, a cloud metadata service or a printer on the
lab network. So the guard judges the *address* a host name resolves to, at the moment a
worker connects, and the connection is made to that same checked address: a DNS answer
cannot change between the check and the connect (DNS rebinding), and redirects are judged
like any other request because every connection passes through here.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from ..page_errors import BlockedAddress
from .deadline import call_with_timeout, time_left, watch_socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NUMERIC = socket.AI_NUMERICHOST  # parse the host as an address; never ask DNS


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses a worker may connect to."""

    allowed_hosts: frozenset[tuple[str, int]] = frozenset()  # host:port let through as named
    allow_private: bool = False  # WORDCRAWL_ALLOW_PRIVATE=1: no address is refused

    def allows_name(self, host: str, port: int) -> bool:
        """Say whether this host:port is let through without looking at its address."""
        return self.allow_private or (host.lower().strip("[]"), port) in self.allowed_hosts


def blocked_reason(ip: IPAddress) -> str | None:
    """Say why an address is refused (e.g. "loopback"), or None when it is public."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return blocked_reason(embedded)
    for kind, test in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", getattr(ip, "is_site_local", False)),
    ):
        if test:
            return kind
    if not ip.is_global:  # shared address space (100.64/10) and the like
        return "non-public"
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 address carries (::ffff:a.b.c.d, 6to4), if any."""
    if isinstance(ip, ipaddress.IPv6Address):
        return ip.ipv4_mapped or ip.sixtofour
    return None


def checked_addresses(
    host: str, port: int, policy: AddressPolicy, timeout: float | None = None
) -> list[str]:
    """Resolve a host and return its addresses, or raise BlockedAddress if one is refused.

    A name with one refused address is refused whole: its owner controls the answers. The
    refusal names the host as written, never the address it resolved to (what is on a
    lab's network is not for the class to read). A name lookup that takes longer than
    `timeout` seconds raises TimeoutError (an address written as numbers needs none).
    """
    host = host.strip("[]")  # an IPv6 literal arrives as [::1]
    try:  # 127.0.0.1, 2130706433, 0x7f.1, ::1: an address, not a name to look up
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=NUMERIC)
        numeric = True
    except socket.gaierror:
        infos = call_with_timeout(
            lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
        numeric = False
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if policy.allows_name(host, port):
        return addresses
    for address in addresses:
        reason = blocked_reason(ipaddress.ip_address(address.split("%", 1)[0]))
        if reason is not None:
            article = "an" if reason[0] in "aeiou" else "a"
            what = "is" if numeric else "resolves to"
            raise BlockedAddress(
                f"{host} {what} {article} {reason} address; wordcrawl only fetches public "
                "addresses unless the host is in WORDCRAWL_ALLOWED_HOSTS"
            )
    return addresses


class _GuardedConnectionMixin:
    """Open the socket to an address the policy allows, and to no other, within the
    time left to the page (deadline.py)."""

    policy: AddressPolicy = AddressPolicy()

    def _new_conn(self) -> socket.socket:
        try:
            addresses = checked_addresses(self.host, self.port, self.policy, time_left(None))
        except socket.gaierror as err:
            raise NameResolutionError(self.host, self, err) from err
        except TimeoutError as err:
            raise ConnectTimeoutError(self, f"looking up {self.host} took too long") from err
        error: OSError | None = None
        for address in addresses:  # like urllib3's create_connection, on checked addresses
            try:
                return self._connect_to(address)
            except OSError as err:
                error = err
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"connecting to {self.host} timed out") from error
        raise NewConnectionError(self, f"cannot connect to {self.host}: {error}") from error

    def _connect_to(self, address: str) -> socket.socket:
        """Connect a socket watched by the page's deadline from its creation on, so that
        the deadline also cuts the TLS handshake that follows."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            watch_socket(sock)
            for option in self.socket_options or ():
                sock.setsockopt(*option)
            timeout = time_left(None)
            if isinstance(self.timeout, int | float):  # the connect timeout, if one is set
                timeout = self.timeout if timeout is None else min(timeout, self.timeout)
            if timeout is not None and timeout <= 0:
                raise TimeoutError("no time left to connect")
            sock.settimeout(timeout)
            if self.source_address:
                sock.bind(self.source_address)
            sock.connect((address, self.port))
        except BaseException:
            sock.close()
            raise
        return sock

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        # A connection kept open since an earlier page is watched again, for this one.
        watch_socket(self.sock)
        return super().getresponse(*args, **kwargs)


@lru_cache(maxsize=16)
def _pool_classes(policy: AddressPolicy) -> dict[str, type[HTTPConnectionPool]]:
    """Make connection pool classes whose connections obey one policy."""
    http_conn = type(
        "GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), {"policy": policy}
    )
    https_conn = type(
        "GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), {"policy": policy}
    )
    return {
        "http": type(
            "GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}
        ),
        "https": type(
            "GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}
        ),
    }


class GuardedAdapter(HTTPAdapter):
    """A requests transport adapter whose every connection passes the address guard."""

    def __init__(self, policy: AddressPolicy, **kwargs: object) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)
