"""Allocation: the lowest free number of a range, without reading every used one.

VMIDs, IPv4 addresses (as integers) and gateway ports are handed out lowest first, and a
released one is the first to be handed out again, with no quarantine. So the used numbers
of a kind are a block from the bottom of its range (its `Domain`), with holes where
numbers were released or passed over.

`take_lowest` keeps that order with a few indexed queries, whatever the number of rows:

- the holes are rows of their own (`FreeRange`, first..last), added where a number is
  released (`release`, in the transaction that frees it) and where the allocation passes
  numbers over (Proxmox has them, their node is not active, a range excludes them), and
  used up as they are handed out; each candidate is checked against the rows that hold
  numbers before it is handed out, so a stale hole is dropped, never handed out twice;
- past the highest used number (one index lookup) everything is free;
- numbers that appeared without the allocation (a container adopted with its own VMID,
  rows loaded in bulk) are found by `AllocationMark`, how far the holes were accounted
  for: above it, the used numbers are read once and their gaps become holes.

Only a number freed behind the allocation's back (a row deleted outright, an update in
SQL) escapes the holes; it is found again when the range runs out, by counting used
numbers in the index (`lowest_free`), never by reading them all.

The callers (services) hold the site's row lock while they choose and insert, so
concurrent requests never pick the same number; the unique constraints back that up.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import BigIntegerField, Count, F, Func, QuerySet

from portal.errors import ErrorCode, ResourceExhausted

from .models import AllocationMark, FreeRange, NumberKind

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.expressions import Combinable
    from django.db.models.sql.compiler import SQLCompiler

    from .models import Site

log = logging.getLogger(__name__)

READ_AT_MOST = 128  # a range with at most this many members is read rather than halved
HOLES_AT_ONCE = 16  # free ranges read per query


# -- what may be handed out ----------------------------------------------------------------
def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


@dataclass(frozen=True)
class Domain:
    """The numbers that may be handed out: those of `spans` (inclusive, sorted, apart)
    whose remainder modulo `modulus` is one of `remainders`, within low..high."""

    low: int
    high: int
    spans: tuple[tuple[int, int], ...]
    modulus: int = 1
    remainders: frozenset[int] = frozenset({0})

    @classmethod
    def of(
        cls,
        low: int,
        high: int,
        *,
        excluded: Iterable[tuple[int, int]] = (),
        modulus: int = 1,
        remainders: Iterable[int] = (0,),
    ) -> Domain:
        spans: list[tuple[int, int]] = []
        at = low
        for lo, hi in _merge(excluded):
            if lo > at:
                spans.append((at, min(lo - 1, high)))
            at = max(at, hi + 1)
        if at <= high:
            spans.append((at, high))
        kept = frozenset(r % modulus for r in remainders)
        return cls(low, high, tuple(s for s in spans if s[0] <= s[1]), modulus, kept)

    @property
    def every_remainder(self) -> bool:
        return len(self.remainders) == self.modulus

    def size(self, lo: int, hi: int) -> int:
        """How many members lie in [lo, hi]."""
        total = 0
        m = self.modulus
        for s_lo, s_hi in self.spans:
            a, b = max(lo, s_lo), min(hi, s_hi)
            if a <= b:
                total += sum((b - r) // m - (a - 1 - r) // m for r in self.remainders)
        return total

    def members(self, lo: int, hi: int) -> Iterator[int]:
        """The members in [lo, hi], in order."""
        for s_lo, s_hi in self.spans:
            for n in range(max(lo, s_lo), min(hi, s_hi) + 1):
                if n % self.modulus in self.remainders:
                    yield n

    def first(self, lo: int, hi: int, *, skip: Collection[int] = ()) -> int | None:
        """The smallest member in [lo, hi] that is not in `skip`."""
        return next((n for n in self.members(lo, hi) if n not in skip), None)


# -- what is used --------------------------------------------------------------------------
@dataclass(frozen=True)
class UsedInRows:
    """The numbers that `rows` hold as `number` (a field or an expression of theirs), asked
    of the database: one index lookup, one aggregate or one short list per question."""

    rows: QuerySet[Any]
    number: Combinable

    def _in(self, lo: int, hi: int) -> QuerySet[Any]:
        rows = self.rows.order_by().alias(alloc_number=self.number)
        return rows.filter(alloc_number__gte=lo, alloc_number__lte=hi)

    def has(self, n: int) -> bool:
        return self._in(n, n).exists()

    def top(self, lo: int, hi: int) -> int | None:
        """The highest used number in [lo, hi] (the last entry of an index range)."""
        highest = self._in(lo, hi).annotate(n=self.number).order_by("-n")
        return next(iter(highest.values_list("n", flat=True)[:1]), None)

    def between(self, lo: int, hi: int) -> list[int]:
        return list(self._in(lo, hi).annotate(n=self.number).values_list("n", flat=True))

    def count_of(self, domain: Domain, lo: int, hi: int) -> int:
        """How many used members of `domain` lie in [lo, hi] (one index range count)."""
        rows = self._in(lo, hi)
        if not domain.every_remainder:
            rows = rows.alias(alloc_remainder=F("alloc_number") % domain.modulus).filter(
                alloc_remainder__in=sorted(domain.remainders)
            )
        return int(rows.aggregate(count=Count("*"))["count"])


# -- the holes -----------------------------------------------------------------------------
Hole = tuple[int, int, int]  # a FreeRange row: (id, first, last)


def release(site_id: int, kind: str, numbers: Iterable[int]) -> None:
    """Numbers no live row holds any more: the first to hand out again. Call it in the
    transaction that frees them."""
    Ledger(site_id, kind).add((n, n) for n in set(numbers))


def gaps(lo: int, hi: int, used: Iterable[int]) -> list[tuple[int, int]]:
    """The runs of [lo, hi] that `used` does not hold."""
    runs, at = [], lo
    for n in sorted(u for u in set(used) if lo <= u <= hi):
        if n > at:
            runs.append((at, n - 1))
        at = n + 1
    if at <= hi:
        runs.append((at, hi))
    return runs


@cache
def _sql() -> dict[str, str]:
    """The ledger's statements; only quoted table and column names are put in them."""
    q = connection.ops.quote_name
    holes, marks = q(FreeRange._meta.db_table), q(AllocationMark._meta.db_table)
    first, last = q("first"), q("last")
    key = "site_id = %s AND kind = %s"
    return {
        "mark": f"SELECT upto FROM {marks} WHERE {key} AND base = %s",  # noqa: S608
        "set_mark": f"UPDATE {marks} SET upto = %s WHERE {key} AND base = %s",  # noqa: S608
        "holes": f"SELECT id, {first}, {last} FROM {holes} WHERE {key} AND ({{meets}}){{past}} "  # noqa: S608
        f"ORDER BY {first}, id LIMIT {HOLES_AT_ONCE}",
        "meets": f"({last} >= %s AND {first} <= %s)",
        "past": f" AND ({first} > %s OR ({first} = %s AND id > %s))",
        "having": f"SELECT id, {first}, {last} FROM {holes} "  # noqa: S608
        f"WHERE {key} AND {first} <= %s AND {last} >= %s",
        "drop": f"DELETE FROM {holes} WHERE id = %s",  # noqa: S608
        "raise_first": f"UPDATE {holes} SET {first} = %s WHERE id = %s",  # noqa: S608
        "lower_last": f"UPDATE {holes} SET {last} = %s WHERE id = %s",  # noqa: S608
    }


def _run(sql: str, params: Sequence[int | str]) -> list[tuple[int, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
    return [tuple(int(v) for v in row) for row in rows]


def _holes(rows: list[tuple[int, ...]]) -> list[Hole]:
    return [(pk, lo, hi) for pk, lo, hi in rows]


class Ledger:
    """A kind's holes (FreeRange rows) on a site, and how far they are accounted for from
    `base` up (AllocationMark).

    Plain SQL on these two tables: the statements run for each number a create takes,
    and building them with the ORM cost more than running them (0.16 ms against 0.01 ms
    for reading the mark on SQLite).
    """

    def __init__(self, site_id: int, kind: str, base: int = 0) -> None:
        self.site_id, self.kind, self.base = site_id, kind, base

    def mark(self) -> int | None:
        found = _run(_sql()["mark"], [self.site_id, self.kind, self.base])
        return found[0][0] if found else None

    def set_mark(self, upto: int, *, new: bool = False) -> None:
        if new:
            AllocationMark.objects.create(
                site_id=self.site_id, kind=self.kind, base=self.base, upto=upto
            )
        else:
            _run(_sql()["set_mark"], [upto, self.site_id, self.kind, self.base])

    def add(self, runs: Iterable[tuple[int, int]]) -> None:
        FreeRange.objects.bulk_create(
            FreeRange(site_id=self.site_id, kind=self.kind, first=lo, last=hi) for lo, hi in runs
        )

    def holes(self, spans: Sequence[tuple[int, int]], *, after: Hole | None) -> list[Hole]:
        """The next HOLES_AT_ONCE holes that meet `spans`, lowest first, past `after`."""
        sql = _sql()
        params: list[int | str] = [self.site_id, self.kind, *(n for span in spans for n in span)]
        past = ""
        if after is not None:
            past = sql["past"]
            params += [after[1], after[1], after[0]]
        meets = " OR ".join([sql["meets"]] * len(spans))
        return _holes(_run(sql["holes"].format(meets=meets, past=past), params))

    def cut(self, hole: Hole, n: int) -> None:
        """Take `n` out of a hole."""
        pk, lo, hi = hole
        if lo == hi:
            _run(_sql()["drop"], [pk])
        elif n == lo:
            _run(_sql()["raise_first"], [n + 1, pk])
        else:
            _run(_sql()["lower_last"], [n - 1, pk])
            if n < hi:
                self.add([(n + 1, hi)])

    def taken(self, n: int) -> None:
        """`n` is handed out: out of every hole that has it."""
        for hole in _holes(_run(_sql()["having"], [self.site_id, self.kind, n, n])):
            self.cut(hole, n)


def _lowest_hole(
    ledger: Ledger,
    domain: Domain,
    used: UsedInRows,
    *,
    skip: Collection[int],
    below: int | None,
) -> tuple[int, Hole] | None:
    """The lowest member of a hole under `below` that no row holds and that is not in
    `skip`, and its hole. A hole a row holds (it came without the allocation) is cut, and
    the search starts again."""
    hi = domain.high if below is None else below - 1
    spans = [(lo, min(s_hi, hi)) for lo, s_hi in domain.spans if lo <= hi]
    stale = True
    while spans and stale:
        stale, after = False, None
        while not stale and (page := ledger.holes(spans, after=after)):
            for hole in page:
                n = domain.first(hole[1], min(hole[2], hi), skip=skip)
                if n is None:
                    continue
                if not used.has(n):
                    return n, hole
                ledger.cut(hole, n)
                stale = True
                break
            after = page[-1]
    return None


def take_lowest(
    site_id: int, kind: str, domain: Domain, used: UsedInRows, *, skip: Collection[int] = ()
) -> int | None:
    """The lowest member of `domain` that no row of `used` holds and that is not in `skip`
    (what the database does not know of), taken: the caller inserts the row that holds it
    in the same transaction, under the site's row lock. None: none is left."""
    ledger = Ledger(site_id, kind, domain.low)
    upto = ledger.mark()
    if upto is None:  # the first take of this kind from this base
        upto = domain.low - 1
        ledger.set_mark(upto, new=True)
    top = used.top(domain.low, domain.high)
    if top is not None and top > upto:  # rows that came without the allocation
        ledger.add(gaps(upto + 1, top, used.between(upto + 1, top)))
        ledger.set_mark(top)
        upto = top
    start = domain.low if top is None else top + 1
    beyond = domain.first(start, domain.high, skip=skip)
    found = _lowest_hole(ledger, domain, used, skip=skip, below=beyond)
    if found is not None:
        ledger.cut(found[1], found[0])
        return found[0]
    if beyond is not None:
        if beyond <= upto:  # released above the top: it may be in a hole
            ledger.taken(beyond)
        else:
            if beyond > max(start, upto + 1):  # passed over: holes under the new top
                ledger.add([(max(start, upto + 1), beyond - 1)])
            ledger.set_mark(beyond)
        return beyond
    last_resort = lowest_free(domain, used, skip=skip)
    if last_resort is not None:
        log.warning("site %s: %s %s was free but not among the holes", site_id, kind, last_resort)
        ledger.taken(last_resort)
    return last_resort


# -- when the holes missed one: count in the index ------------------------------------------
def lowest_free(domain: Domain, used: UsedInRows, *, skip: Collection[int] = ()) -> int | None:
    """The lowest member of `domain` that is neither used nor in `skip`, by counting the
    used members of ranges in the index and halving the range that has a hole."""
    for span_lo, span_hi in domain.spans:
        start = domain.first(span_lo, span_hi)
        while start is not None:
            found = _lowest_unused(domain, used, start, span_hi)
            if found is None:
                break
            if found not in skip:
                return found
            start = domain.first(found + 1, span_hi, skip=skip)
    return None


def _lowest_unused(domain: Domain, used: UsedInRows, lo: int, hi: int) -> int | None:
    """The lowest unused member in [lo, hi], within one span."""
    if used.count_of(domain, lo, hi) == domain.size(lo, hi):
        return None
    while domain.size(lo, hi) > READ_AT_MOST:  # [lo, hi] has a hole: halve it
        mid = (lo + hi) // 2
        if used.count_of(domain, lo, mid) < domain.size(lo, mid):
            hi = mid
        else:
            lo = mid + 1
    taken = set(used.between(lo, hi))
    return next(n for n in domain.members(lo, hi) if n not in taken)


# -- addresses and ports ---------------------------------------------------------------------
class IPv4Number(Func):
    """An IPv4 address column as its 32-bit number, for ranges and indexes.

    PostgreSQL subtracts 0.0.0.0 from the `inet`; SQLite reads the dotted text with
    built-in functions only (CAST reads an integer prefix), so both can index it. The
    constants are written into the SQL, not bound, so that a query's expression is the
    index's own.
    """

    arity = 1
    output_field = BigIntegerField()

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[Any]]:
        column = self._column(compiler)
        return f"({column} - '0.0.0.0'::inet)", []

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[Any]]:
        column = self._column(compiler)
        rest2 = f"substr({column}, instr({column}, '.') + 1)"
        rest3 = f"substr({rest2}, instr({rest2}, '.') + 1)"
        rest4 = f"substr({rest3}, instr({rest3}, '.') + 1)"
        octets = [f"CAST({part} AS INTEGER)" for part in (column, rest2, rest3, rest4)]
        weighted = " + ".join(f"{o} * {1 << 8 * (3 - i)}" for i, o in enumerate(octets))
        return f"({weighted})", []

    def _column(self, compiler: SQLCompiler) -> str:
        column, params = compiler.compile(self.source_expressions[0])
        if params:
            raise ValueError("IPv4Number reads a column, not a value")
        return column


def ip_domain(site: Site) -> Domain:
    """The site's host addresses outside its reserved ranges, DHCP range and gateway."""
    network = site.network
    return Domain.of(
        int(network.network_address) + 1,
        int(network.broadcast_address) - 1,
        excluded=site.excluded_ranges(),
    )


def free_ip(site: Site, *, held: QuerySet[Any]) -> str:
    """The lowest address of the site's network that may be handed out and that none of
    `held` (rows with an `ip` field) has, taken."""
    found = take_lowest(site.pk, NumberKind.IP, ip_domain(site), UsedInRows(held, IPv4Number("ip")))
    if found is None:
        raise ResourceExhausted(
            f"no free address left in {site.network}", code=ErrorCode.IP_EXHAUSTED
        )
    return str(ipaddress.IPv4Address(found))


def release_ip(site_id: int, ip: str) -> None:
    release(site_id, NumberKind.IP, [int(ipaddress.IPv4Address(ip))])


def mac_for(site_id: int, ip: str) -> str:
    """A locally administered unicast MAC derived from the site and the address.

    Unique wherever the IP is unique, and stable: the same address always gets the
    same MAC, so no ARP cache or DHCP lease ever sees one address with two MACs.
    """
    octets = [0x02, site_id & 0xFF, *ipaddress.IPv4Address(ip).packed]
    return ":".join(f"{o:02X}" for o in octets)


def free_port(
    site_id: int,
    protocol: str,
    low: int,
    high: int,
    *,
    held: QuerySet[Any],
    blocked: Iterable[int] = (),
) -> int:
    """The lowest port of `protocol` in [low, high] that none of `held` (rows with an
    `external_port`) has and that is not blocked, taken."""
    domain = Domain.of(low, high, excluded=[(p, p) for p in blocked])
    found = take_lowest(site_id, protocol, domain, UsedInRows(held, F("external_port")))
    if found is None:
        raise ResourceExhausted(
            f"no free port left in {low}-{high}", code=ErrorCode.PORTS_EXHAUSTED
        )
    return found


def release_ports(site_id: int, held: Iterable[tuple[str, int]]) -> None:
    """Ports, as (protocol, port), that no mapping holds any more."""
    by_protocol: dict[str, list[int]] = {}
    for protocol, port in held:
        by_protocol.setdefault(protocol, []).append(port)
    for protocol, ports in by_protocol.items():
        release(site_id, protocol, ports)
