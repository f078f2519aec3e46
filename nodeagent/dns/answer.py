"""DNS messages: a query in, this node's answer (or "ask upstream") out.

Answers, for a name the asker's networks know (``NameIndex.resolve``):
``A`` (and ``ANY``) -> its addresses, TTL 0 (the state changes under the
names: a cached answer would outlive a moved task); any other type
(``AAAA`` among them) -> NOERROR without answers, as Docker's resolver does
(the networks are IPv4 only). A name the node does not know goes upstream
(``Verdict.forward``), or gets SERVFAIL at once when there is no upstream.
A malformed query gets FORMERR when its header can be read, else nothing;
opcodes other than QUERY get NOTIMP; responses are ignored.

A reply over UDP fits the asker's buffer (512 bytes, or what its EDNS
record offers, up to 4096): a local answer keeps the addresses that fit
and sets TC (a client that can retries over TCP; one that cannot, such as
musl's older resolvers, still has some of them, as with Docker); a
forwarded answer too long is cut to its question with TC set.

Loads dnslib: imported only by the server, on the first container with DNS.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, RR, A, DNSHeader, DNSRecord

from nodeagent.dns.index import NameIndex
from nodeagent.dns.scope import ContainerScope

__all__ = ["MAX_UDP", "Verdict", "respond", "servfail", "truncate_for_udp", "udp_limit"]

MAX_UDP = 512  # RFC 1035's UDP payload without EDNS
MAX_EDNS = 4096
TTL = 0
_SHUFFLE = random.Random()


@dataclass(frozen=True)
class Verdict:
    """What to do with a query: send ``reply``, or ask upstream (``forward``),
    or nothing (an unreadable message)."""

    reply: bytes | None = None
    forward: bool = False
    query: DNSRecord | None = None


def respond(index: NameIndex, scope: ContainerScope, data: bytes, udp: bool) -> Verdict:
    """This node's verdict on query ``data`` from a container with ``scope``."""
    try:
        query = DNSRecord.parse(data)
    except Exception:  # dnslib raises DNSError, and struct or index errors on junk
        return Verdict(reply=_formerr(data))
    if query.header.qr:
        return Verdict()  # a response sent to us: never answered (no reflection loops)
    if query.header.opcode != 0:
        return Verdict(reply=_error(query, RCODE.NOTIMP))
    if len(query.questions) != 1:
        return Verdict(reply=_error(query, RCODE.FORMERR))
    q = query.q
    found = index.resolve(scope, str(q.qname)) if q.qclass in (1, 255) else None  # IN, ANY
    if found is None:
        return Verdict(forward=True, query=query)
    reply = query.reply(ra=0, aa=1)
    if q.qtype in (QTYPE.A, QTYPE.ANY):
        addresses = list(found.addresses)
        if found.spread:
            _SHUFFLE.shuffle(addresses)
        for address in addresses:
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(address), ttl=TTL))
    return Verdict(reply=_fit(reply, udp_limit(query)) if udp else reply.pack(), query=query)


def udp_limit(query: DNSRecord) -> int:
    """The largest UDP reply the asker takes: its EDNS payload size, or 512."""
    for rr in query.ar:
        if rr.rtype == QTYPE.OPT:
            return max(MAX_UDP, min(MAX_EDNS, int(rr.rclass)))
    return MAX_UDP


def _fit(reply: DNSRecord, limit: int) -> bytes:
    """``reply`` packed, with as many answers as fit in ``limit`` (TC if cut)."""
    data = reply.pack()
    if len(data) <= limit:
        return data
    answers = list(reply.rr)
    header = reply.header
    header.tc = 1
    # An A record of a compressed name takes 16 bytes: drop the excess at once.
    keep = max(0, len(answers) - (len(data) - limit + 15) // 16)
    while True:
        reply.rr = answers[:keep]
        data = reply.pack()
        if len(data) <= limit or keep == 0:
            return data
        keep -= 1


def truncate_for_udp(query: DNSRecord, response: bytes) -> bytes:
    """An upstream's ``response`` as the asker can take it over UDP."""
    if len(response) <= udp_limit(query):
        return response
    header = DNSHeader(id=query.header.id, bitmap=query.header.bitmap, qr=1, ra=1, tc=1)
    if len(response) >= 4:
        header.rcode = response[3] & 0x0F
    return DNSRecord(header, q=query.q).pack()


def servfail(query: DNSRecord) -> bytes:
    return _error(query, RCODE.SERVFAIL)


def _error(query: DNSRecord, rcode: int) -> bytes:
    reply = DNSRecord(DNSHeader(id=query.header.id, bitmap=query.header.bitmap, qr=1, ra=0,
                                rcode=rcode), q=query.q if query.questions else None)
    return reply.pack()


def _formerr(data: bytes) -> bytes | None:
    """FORMERR for a query whose header alone could be read; None for junk
    (or a response: never answered)."""
    if len(data) < 12:
        return None
    qid, flags = struct.unpack("!HH", data[:4])
    if flags & 0x8000:
        return None
    # Same id and opcode and RD; QR set; RCODE 1 (FORMERR); no sections.
    return struct.pack("!HHHHHH", qid, (flags & 0x7900) | 0x8000 | RCODE.FORMERR, 0, 0, 0, 0)
