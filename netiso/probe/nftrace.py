"""The kernel's nf_tables trace events, read straight from netlink (what ``xtables-monitor --trace`` reads).

Why not only ``xtables-monitor``: measured on this project's machines (iptables 1.8.9, kernel
6.18), it asks the kernel for the rule of *every* trace event before printing it, so a burst of
probes (50 concurrent SYNs, ~30 rule events each per node) overflows its netlink socket, and
it exits with "cannot receive from nfnetlink socket: No buffer space available" - even writing
to a file. Reading the events here costs no round trip per event: the socket gets a 32 MiB
buffer (``SO_RCVBUFFORCE``, root), rule comments are fetched once per namespace with one rule
dump (and again when an unknown handle shows up, i.e. the rules were reloaded).

The message formats are the kernel's UAPI (``include/uapi/linux/netfilter/nf_tables.h``):
``NFT_MSG_TRACE`` messages on multicast group ``NFNLGRP_NFTRACE`` carry ``NFTA_TRACE_TABLE``,
``_CHAIN``, ``_RULE_HANDLE``, ``_TYPE`` (policy/return/rule), ``_VERDICT`` (nested code/chain),
``_ID`` and, once per hook, the network and transport headers; ``NFT_MSG_NEWRULE`` dump answers
carry ``NFTA_RULE_HANDLE`` and the expressions, among them iptables-nft 1.8.9's ``-m comment``
as an xt ``comment`` match (``NFTA_RULE_USERDATA``'s comment TLV, what ``nft`` writes, is read
too). On kernel 6.18 the end of a chain without a matching rule is reported as a ``rule`` event
without a handle (verdict CONTINUE): such events are left out of paths.

It lives in the probe layer because the probe agent is its reader (the process that holds the
probe sockets); the text parser stays backend-generic in ``netiso.backends.trace_parse``.

The events become the same :class:`~netiso.backends.trace_parse.PacketInfo` /
:class:`~netiso.backends.trace_parse.TraceHop` objects the ``xtables-monitor`` text parser
produces; ``rule`` (iptables-save text) is empty here, the comment carries what matters.
Known difference: a rule whose target is REJECT is recognised from its expressions (xt
``REJECT`` target or native ``reject``), as xtables-monitor's ``-j REJECT`` text would be.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from netiso.backends.trace_parse import PacketInfo, TraceHop
from netiso.oracle.decided import from_comment

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NFNLGRP_NFTRACE = 9
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWRULE = 6
NFT_MSG_GETRULE = 7
NFT_MSG_TRACE = 17
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_TYPE_MASK = 0x3FFF
RCVBUF = 32 << 20

# nft_trace_attributes
TRACE_TABLE, TRACE_CHAIN, TRACE_RULE_HANDLE, TRACE_TYPE, TRACE_VERDICT, TRACE_ID = 1, 2, 3, 4, 5, 6
TRACE_NETWORK_HEADER, TRACE_TRANSPORT_HEADER, TRACE_POLICY = 8, 9, 16
TRACETYPE = {1: "policy", 2: "return", 3: "rule"}
# nft_rule_attributes
RULE_TABLE, RULE_CHAIN, RULE_HANDLE, RULE_EXPRESSIONS, RULE_USERDATA = 1, 2, 3, 4, 7
UDATA_COMMENT = 0
VERDICTS = {0: "DROP", 1: "ACCEPT", 2: "STOLEN", 3: "QUEUE", 4: "REPEAT", 5: "STOP",
            -1: "CONTINUE", -2: "BREAK", -3: "JUMP", -4: "GOTO", -5: "RETURN"}
PROTOCOLS = {6: "TCP", 17: "UDP", 1: "ICMP", 132: "SCTP"}


@dataclass(frozen=True)
class RuleInfo:
    comment: str | None
    rejects: bool  # the rule's target is REJECT


@dataclass(frozen=True)
class TraceEvent:
    """One decoded NFT_MSG_TRACE message."""

    trace_id: str
    table: str
    chain: str
    kind: str  # rule | policy | return
    handle: int | None
    verdict: str  # DROP ACCEPT RETURN CONTINUE JUMP:<chain> GOTO:<chain> ...
    packet: PacketInfo | None  # present on the first event of each hook


def attributes(data: bytes, offset: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """``(type, payload)`` of each netlink attribute in ``data[offset:end]``.

    >>> list(attributes(struct.pack("HH", 8, 1) + b"ab\\x00\\x00"))
    [(1, b'ab\\x00\\x00')]
    """
    end = len(data) if end is None else end
    while offset + 4 <= end:
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            break
        yield kind & NLA_TYPE_MASK, data[offset + 4: offset + length]
        offset += (length + 3) & ~3


_NLA = struct.Struct("HH")


def attribute_map(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """``{type: payload}`` of the attributes in ``data[offset:]`` (the last one wins), without a generator.

    The trace reader's hot path: the agent decodes ~60 events per traced probe.

    >>> attribute_map(struct.pack("HH", 8, 1) + b"ab\\x00\\x00" + struct.pack("HH", 5, 0x8002) + b"z\\x00\\x00\\x00")
    {1: b'ab\\x00\\x00', 2: b'z'}
    """
    out: dict[int, bytes] = {}
    end = len(data)
    unpack = _NLA.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = data[offset + 4: offset + length]
        offset += (length + 3) & ~3
    return out


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(type, flags, payload after nlmsghdr)`` of each netlink message in one datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, flags, _seq, _pid = struct.unpack_from("IHHII", data, offset)
        if length < 16:
            break
        yield kind, flags, data[offset + 16: offset + length]
        offset += (length + 3) & ~3


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def packet_info(network: bytes, transport: bytes | None) -> PacketInfo | None:
    """The fields the correlation needs, from the IPv4 network and transport headers.

    >>> ip = bytes([0x45, 0xb4, 0, 60, 0x30, 0x39, 0x40, 0, 64, 6, 0, 0]) + bytes([198, 18, 0, 100, 198, 18, 0, 12])
    >>> p = packet_info(ip, struct.pack("!HH", 40000, 30000))
    >>> p.proto, p.src, p.dst, p.sport, p.dport, p.ip_id, p.tos, p.ttl
    ('TCP', '198.18.0.100', '198.18.0.12', 40000, 30000, 12345, 180, 64)
    """
    if len(network) < 20 or network[0] >> 4 != 4:
        return None
    proto = PROTOCOLS.get(network[9], str(network[9]))
    sport = dport = seq = None
    if transport is not None and len(transport) >= 4 and proto in ("TCP", "UDP", "SCTP"):
        sport, dport = struct.unpack_from("!HH", transport, 0)
    if transport is not None and len(transport) >= 8 and proto == "TCP":
        seq = struct.unpack_from("!I", transport, 4)[0]
    return PacketInfo(proto=proto, src=socket.inet_ntoa(network[12:16]),  # 10x cheaper than ipaddress, same text
                      dst=socket.inet_ntoa(network[16:20]), sport=sport, dport=dport,
                      ip_id=struct.unpack_from("!H", network, 4)[0], tos=network[1], ttl=network[8],
                      iface_in=None, iface_out=None, seq=seq)


_HEADS: dict[tuple[bytes | None, ...], tuple[str, str, str, int | None, str]] = {}
MAX_HEADS = 1 << 14


def decode_trace(payload: bytes) -> TraceEvent | None:
    """One NFT_MSG_TRACE payload (after the nlmsghdr: nfgenmsg + attributes).

    The rule part of an event (table, chain, type, handle, verdict) repeats across the ~60 events
    of every traced probe, so it is decoded once per distinct raw form and then looked up (at 48
    nodes the agent decodes ~650,000 events in a run; the per-event cost is its hot path).

    >>> attr = lambda kind, value: struct.pack("HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)
    >>> verdict = attr(TRACE_VERDICT, attr(1, struct.pack("!i", 0)))
    >>> head = attr(TRACE_TABLE, b"filter\\0") + attr(TRACE_CHAIN, b"FORWARD\\0") + attr(TRACE_TYPE, struct.pack("!I", 3))
    >>> rule = attr(TRACE_RULE_HANDLE, struct.pack("!Q", 7)) + verdict
    >>> body = bytes(4) + attr(TRACE_ID, bytes.fromhex("00c0ffee")) + head + rule
    >>> e = decode_trace(body)
    >>> e.trace_id, e.table, e.chain, e.kind, e.handle, e.verdict, e.packet
    ('00c0ffee', 'filter', 'FORWARD', 'rule', 7, 'DROP', None)
    >>> decode_trace(body) == e  # the second time from the cache
    True
    """
    if len(payload) < 4:
        return None
    attrs = attribute_map(payload, 4)
    raw_id = attrs.get(TRACE_ID)
    raw_type = attrs.get(TRACE_TYPE)
    if raw_id is None or raw_type is None:
        return None
    key = (attrs.get(TRACE_TABLE), attrs.get(TRACE_CHAIN), raw_type, attrs.get(TRACE_RULE_HANDLE),
           attrs.get(TRACE_VERDICT), attrs.get(TRACE_POLICY))
    head = _HEADS.get(key)
    if head is None:
        head = _decode_head(attrs)
        if len(_HEADS) >= MAX_HEADS:
            _HEADS.clear()
        _HEADS[key] = head
    table, chain, kind, handle, verdict = head
    packet = None
    network = attrs.get(TRACE_NETWORK_HEADER)
    if network is not None:
        packet = packet_info(network, attrs.get(TRACE_TRANSPORT_HEADER))
    # the id's network-order bytes in hex: the same text as f"{id:08x}"
    return TraceEvent(trace_id=raw_id[:4].hex(), table=table, chain=chain, kind=kind, handle=handle,
                      verdict=verdict, packet=packet)


def _decode_head(attrs: dict[int, bytes]) -> tuple[str, str, str, int | None, str]:
    """(table, chain, kind, handle, verdict) of one event's attributes."""
    kind = TRACETYPE.get(struct.unpack("!I", attrs[TRACE_TYPE][:4])[0], "?")
    handle = struct.unpack("!Q", attrs[TRACE_RULE_HANDLE][:8])[0] if TRACE_RULE_HANDLE in attrs else None
    verdict = ""
    raw_verdict = attrs.get(TRACE_VERDICT)
    if raw_verdict is not None:
        nested = attribute_map(raw_verdict)
        code = struct.unpack("!i", nested[1][:4])[0] if 1 in nested else None
        target = _cstr(nested[2]) if 2 in nested else ""
        verdict = VERDICTS.get(code if code is not None else 99, str(code))
        if target:
            verdict = f"{verdict}:{target}"
    elif kind == "policy" and TRACE_POLICY in attrs:
        verdict = VERDICTS.get(struct.unpack("!I", attrs[TRACE_POLICY][:4])[0], "?")
    elif kind == "return":
        verdict = "RETURN"
    if kind == "rule" and handle is None and verdict == "CONTINUE":
        kind = "end"  # implicit return at the end of a chain: no rule matched
    return (_cstr(attrs.get(TRACE_TABLE, b"")), _cstr(attrs.get(TRACE_CHAIN, b"")), kind,
            handle if kind == "rule" else None, verdict)


def decode_rule(payload: bytes) -> tuple[str, str, int, RuleInfo] | None:
    """``(table, chain, handle, info)`` of one NFT_MSG_NEWRULE payload."""
    table = chain = ""
    handle = None
    comment = None
    rejects = False
    for kind, value in attributes(payload, 4):
        if kind == RULE_TABLE:
            table = _cstr(value)
        elif kind == RULE_CHAIN:
            chain = _cstr(value)
        elif kind == RULE_HANDLE:
            handle = struct.unpack("!Q", value[:8])[0]
        elif kind == RULE_USERDATA:
            comment = udata_comment(value)
        elif kind == RULE_EXPRESSIONS:
            rejects = b"REJECT\0" in value or b"reject\0" in value
            comment = comment or xt_comment(value)
    if handle is None:
        return None
    return table, chain, handle, RuleInfo(comment, rejects)


def xt_comment(expressions: bytes) -> str | None:
    """The text of an xt ``comment`` match among a rule's expressions (how iptables-nft 1.8.9 stores
    ``-m comment``: expression ``match``, NFTA_MATCH_NAME "comment", NFTA_MATCH_INFO = xt_comment_info)."""
    for _elem, expr in attributes(expressions):
        name, data = None, None
        for kind, value in attributes(expr):
            if kind == 1:
                name = _cstr(value)
            elif kind == 2:
                data = value
        if name != "match" or data is None:
            continue
        fields = dict(attributes(data))
        if _cstr(fields.get(1, b"")) == "comment" and 3 in fields:
            return _cstr(fields[3])
    return None


def udata_comment(udata: bytes) -> str | None:
    """The comment TLV of a rule's user data (type u8, length u8, value).

    >>> udata_comment(bytes([0, 4]) + b"abc\\x00")
    'abc'
    """
    offset = 0
    while offset + 2 <= len(udata):
        kind, length = udata[offset], udata[offset + 1]
        if kind == UDATA_COMMENT:
            return _cstr(udata[offset + 2: offset + 2 + length])
        offset += 2 + length
    return None


def open_trace_socket() -> socket.socket:
    """A non-blocking NETLINK_NETFILTER socket subscribed to trace events, in the caller's namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                         NETLINK_NETFILTER)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root: past rmem_max)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, 0))
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTRACE)
    except BaseException:
        sock.close()
        raise
    return sock


def dump_rules(family: int = socket.AF_INET) -> dict[tuple[str, str, int], RuleInfo]:
    """Every rule of ``family`` in the caller's namespace: (table, chain, handle) -> comment/REJECT."""
    out: dict[tuple[str, str, int], RuleInfo] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        sock.settimeout(5.0)
        msg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE
        body = struct.pack("BBH", family, 0, 0)
        seq = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        sock.send(struct.pack("IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
        while True:
            data = sock.recv(1 << 20)
            for kind, _flags, payload in messages(data):
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    err = -struct.unpack_from("i", payload, 0)[0] if len(payload) >= 4 else 0
                    if err:
                        raise OSError(err, f"nf_tables rule dump: {os.strerror(err)}")
                    return out
                if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE:
                    rule = decode_rule(payload)
                    if rule is not None:
                        table, chain, handle, info = rule
                        out[(table, chain, handle)] = info


def read_events(sock: socket.socket) -> Iterator[TraceEvent]:
    """Every trace event waiting on ``sock`` (non-blocking; stops when none is left)."""
    msg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return
        for kind, _flags, payload in messages(data):
            if kind == msg_type:
                event = decode_trace(payload)
                if event is not None:
                    yield event


def hop_of(node: str, event: TraceEvent, rules: dict[tuple[str, str, int], RuleInfo]) -> TraceHop:
    """The event as a :class:`TraceHop`, with the rule's comment and decision."""
    info = rules.get((event.table, event.chain, event.handle)) if event.handle is not None else None
    comment = info.comment if info else None
    decision = from_comment(comment)
    verdict = "END" if event.kind == "end" else event.verdict
    if verdict == "DROP" and ((info is not None and info.rejects) or (decision is not None and decision.verdict == "reject")):
        verdict = "REJECT"
    return TraceHop(node=node, table=event.table, chain=event.chain, handle=event.handle, verdict=verdict,
                    rule="", comment=comment, decision=str(decision) if decision else None)
