"""The business conventions of the Brightcart database, as the analysts' wiki states them.

None of them can be read off the schema or a few sample rows: that is the point
of this agent. Each has a stable id (question files list the ones their gold
SQL applies), a statement in plain words, the SQL fragment that applies it
(written the way the gold SQL writes it), and ``naive``: regex substitutions
that turn a gold query into the query someone ignoring the convention would
write. The tests use ``naive`` to prove that every convention changes the
answer of every question that lists it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Convention:
    id: str
    statement: str
    sql: str
    #: (pattern, replacement) applied in order; the first pattern must match the gold SQL.
    naive: tuple[tuple[str, str], ...]

    def neutralize(self, sql: str) -> str:
        """``sql`` as it would be written by someone who ignores this convention."""
        for pattern, repl in self.naive:
            sql = re.sub(pattern, repl, sql)
        return sql

    def applies_to(self, sql: str) -> bool:
        """True when ``sql`` contains this convention's fragment (the first naive pattern matches)."""
        return re.search(self.naive[0][0], sql) is not None


CONVENTIONS: tuple[Convention, ...] = (
    Convention(
        "money-cents",
        "Every money column (order_items.price, products.price, payments.amount, refunds.amount, "
        "subscriptions.amount, invoices.amount) holds cents; report dollars.",
        "SUM(oi.qty * oi.price) / 100.0",
        ((r"\s*/\s*100\.0", ""),),
    ),
    Convention(
        "order-cancelled",
        "orders.status codes: 1 placed, 2 shipped, 3 cancelled, 4 delivered. Cancelled orders (3) are not "
        "orders: leave them out of every count, revenue and average.",
        "o.status <> 3",
        ((r"o\.status <> 3", "1 = 1"),),
    ),
    Convention(
        "test-accounts",
        "Customers whose e-mail is on the company's own domain @brightcart.io are internal test accounts: "
        "leave them (and their orders, subscriptions, invoices) out of every business figure.",
        "c.email NOT LIKE '%@brightcart.io'",
        ((r"c\.email NOT LIKE '%@brightcart\.io'", "1 = 1"),),
    ),
    Convention(
        "reimport-duplicates",
        "Orders with load_id 17 are copies made by a botched re-import (same customer, time and items as an "
        "original, new id): always exclude them.",
        "o.load_id <> 17",
        ((r"o\.load_id <> 17", "1 = 1"),),
    ),
    Convention(
        "local-date",
        "Timestamps are stored in UTC; the business reports by local date in UTC-5 (no daylight saving): "
        "take dates, months and years of timestamps with the '-5 hours' modifier.",
        "date(o.created_at, '-5 hours')",
        ((r",\s*'-5 hours'", ""),),
    ),
    Convention(
        "fiscal-year",
        "Fiscal year N runs from 1 February N to 31 January N+1 (local dates).",
        "date(o.created_at, '-5 hours') BETWEEN '2024-02-01' AND '2025-01-31'",
        ((r"BETWEEN '(\d{4})-02-01' AND '\d{4}-01-31'", r"BETWEEN '\1-01-01' AND '\1-12-31'"),),
    ),
    Convention(
        "refunds-net",
        "Revenue is net: order_items value of the period's orders minus the refunds made on those orders "
        "(refunds count in the period of the order, whenever they were paid out).",
        "SUM(oi.qty * oi.price) - COALESCE(rf_total, 0)  -- rf_total: SUM(refunds.amount) of the same orders",
        ((r"-\s*COALESCE\((?:\w+\.)?rf_total, 0\)", "- 0"),),
    ),
    Convention(
        "customer-erased",
        "A customer with a value in valid_to was erased on request and is no longer a customer: leave them out "
        "of customer counts and lists (their past orders still count as revenue).",
        "c.valid_to IS NULL",
        ((r"c\.valid_to IS NULL", "1 = 1"),),
    ),
    Convention(
        "region-current",
        "customers.region is a legacy column, frozen at 'North' for every customer created since the CRM "
        "migration of 1 July 2024; a customer's region is regions.name through customers.region_id.",
        "JOIN regions r ON r.id = c.region_id",
        ((r"r\.id = c\.region_id", "r.name = c.region"),),
    ),
    Convention(
        "subscription-active",
        "subscriptions.state codes: 1 active, 2 paused, 3 cancelled, 5 trial. Only state 1 is an active "
        "(paying) subscription.",
        "s.state = 1",
        ((r"s\.state = 1", "s.ended_at IS NULL"),),
    ),
    Convention(
        "subscription-term",
        "subscriptions.amount is the price of a whole term of subscriptions.term months (1 or 12); monthly "
        "recurring revenue is amount / term.",
        "s.amount * 1.0 / s.term",
        ((r"\s*/\s*s\.term\b", ""),),
    ),
    Convention(
        "invoice-void",
        "invoices.state codes: 1 open, 2 paid, 9 void. A voided invoice was reissued under a new id: leave "
        "state 9 out of every invoice count and amount.",
        "i.state <> 9",
        ((r"i\.state <> 9", "1 = 1"),),
    ),
)

BY_ID: dict[str, Convention] = {c.id: c for c in CONVENTIONS}
