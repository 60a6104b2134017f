"""The fraud scenarios. Each fills a target number of fraudulent transactions.

A scenario draws *incidents* (one compromised card, one rogue merchant, one
skimmed terminal...) until it has produced exactly its target; the last incident
is cut short when needed. Every fraudulent row carries its scenario code, which
becomes ``fraud_scenario`` on its label, never a field of the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fraudstream.generator.config import SCENARIOS
from fraudstream.generator.draft import (
    US_PER_DAY,
    US_PER_S,
    Draft,
    draft_from_lists,
    local_amounts,
)
from fraudstream.generator.world import CATEGORIES, CHANNELS, CITIES, World

US_PER_MIN = 60 * US_PER_S
FAR_KM = 3000.0
#: Share of a card tester's probes sent as zero-amount authorisations (the rest are
#: tiny payments): a 0.00 verification answers "is this card live?" without a charge.
ZERO_PROBE_SHARE = 0.4
Rows = dict[str, list[object]]


@dataclass(frozen=True)
class Incident:
    """One fraud event: which cards, at or because of which merchant, from when (us UTC)."""

    scenario: str
    start_us: int
    cards: tuple[str, ...]
    merchant: str | None = None
    transactions: int = 0


def _distances_km() -> np.ndarray:
    lat = np.radians([c.lat for c in CITIES])
    lon = np.radians([c.lon for c in CITIES])
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat[:, None]) * np.cos(lat[None, :]) * np.sin(dlon / 2) ** 2
    km: np.ndarray = 2 * 6371.0 * np.arcsin(np.sqrt(a))
    return km


CITY_KM = _distances_km()


def _mcc(*codes: str) -> list[int]:
    return [i for i, c in enumerate(CATEGORIES) if c.mcc in codes]


@dataclass
class Context:
    """What every scenario may look at: the world, the genuine traffic, the period."""

    rng: np.random.Generator
    world: World
    genuine: Draft
    start_us: int
    end_us: int
    rows: Rows = field(default_factory=dict)

    @cached_property
    def fx(self) -> np.ndarray:
        return np.array([c.fx for c in CITIES])

    @cached_property
    def genuine_channel(self) -> np.ndarray:
        """Index into CHANNELS of every genuine row."""
        channel: np.ndarray = self.world.merchant_channel[self.genuine.merchant]
        return channel

    def merchants(self, cities: list[int] | None, categories: list[int]) -> np.ndarray:
        """Merchant indices in any of ``cities`` (None: anywhere) with one of ``categories``."""
        w = self.world
        mask = np.isin(w.merchant_category, categories)
        if cities is not None:
            mask &= np.isin(w.merchant_city, cities)
        return np.flatnonzero(mask)

    def far_city(self, home: int) -> int:
        """A city at least FAR_KM from ``home``."""
        return int(self.rng.choice(np.flatnonzero(CITY_KM[home] >= FAR_KM)))

    def home_city(self, card: int) -> int:
        return int(self.world.customer_city[self.world.card_customer[card]])

    def spend(self, card: int) -> float:
        return float(self.world.customer_spend[self.world.card_customer[card]])

    def identity(self, city: int) -> tuple[str, str]:
        """A fraudster's device id and an IP address located in ``city``."""
        token = int(self.rng.integers(2**40, 2**44))
        b, c, d = (int(x) for x in self.rng.integers(0, 256, 3))
        return f"dev-{token:012x}", f"{20 + city * 7}.{b}.{c}.{d}"

    def start(self, span_us: int) -> int:
        """A uniform start time leaving ``span_us`` before the end of the period."""
        latest = max(self.start_us + 1, self.end_us - span_us)
        return int(self.rng.integers(self.start_us, latest))


def _card_testing(ctx: Context, room: int) -> tuple[Rows, Incident]:
    """A stolen card number tried with tiny or zero ecom amounts at many merchants in minutes."""
    rng = ctx.rng
    card = int(rng.integers(len(ctx.world.card_ids)))
    n = min(int(rng.integers(5, 16)), room)
    t = ctx.start(2 * 3600 * US_PER_S) + np.cumsum(rng.integers(5, 90, n)) * US_PER_S
    pool = ctx.merchants(None, _mcc("5815", "5999"))
    merchant = rng.choice(pool, size=n, replace=False)
    device, ip = ctx.identity(int(rng.integers(15, len(CITIES))))
    amount = np.round(rng.uniform(0.5, 2.99, n), 2)
    amount[rng.random(n) < ZERO_PROBE_SHARE] = 0.0
    rows: Rows = {
        "event_us": t.tolist(),
        "card": [card] * n,
        "merchant": merchant.tolist(),
        "amount": amount.tolist(),
        "device": [device] * n,
        "ip": [ip] * n,
    }
    return rows, Incident("card_testing", int(t[0]), (str(ctx.world.card_ids[card]),), None, n)


def _account_takeover(ctx: Context, room: int) -> tuple[Rows, Incident]:
    """A taken-over account buys electronics abroad: new device, new place, large amounts."""
    rng = ctx.rng
    card = int(rng.integers(len(ctx.world.card_ids)))
    city = ctx.far_city(ctx.home_city(card))
    n = min(int(rng.integers(2, 7)), room)
    t = ctx.start(12 * 3600 * US_PER_S) + np.cumsum(rng.integers(10, 120, n)) * US_PER_MIN
    merchant = rng.choice(ctx.merchants([city], _mcc("5732")), size=n)
    amount = ctx.spend(card) * rng.uniform(400, 1500, n) * ctx.fx[city]
    device, ip = ctx.identity(city)
    rows: Rows = {
        "event_us": t.tolist(),
        "card": [card] * n,
        "merchant": merchant.tolist(),
        "amount": np.round(amount, 2).tolist(),
        "device": [device] * n,
        "ip": [ip] * n,
    }
    return rows, Incident("account_takeover", int(t[0]), (str(ctx.world.card_ids[card]),), None, n)


def _compromised_terminal(ctx: Context, room: int) -> tuple[Rows, Incident] | None:
    """A skimmed terminal: cards used there for a few days are cloned and cashed out abroad.

    The terminal's own transactions stay genuine; the fraud is the later misuse
    (ATM withdrawals in a far city, 1-10 days after the skimming window).
    """
    rng, g = ctx.rng, ctx.genuine
    period = ctx.end_us - ctx.start_us
    window = int(min(rng.uniform(2, 5) * US_PER_DAY, 0.2 * period))
    misuse = int(min(10 * US_PER_DAY, 0.3 * period))
    terminal = int(
        g.merchant[rng.choice(np.flatnonzero(ctx.genuine_channel == CHANNELS.index("pos")))]
    )
    t0 = ctx.start(window + misuse + US_PER_DAY)
    seen = (g.merchant == terminal) & (g.event_us >= t0) & (g.event_us < t0 + window)
    exposed = np.unique(g.card[seen])
    if len(exposed) == 0:
        return None
    cards = rng.permutation(exposed)[: max(1, int(np.ceil(0.7 * len(exposed))))]
    city = ctx.far_city(int(ctx.world.merchant_city[terminal]))
    atms = ctx.merchants([city], _mcc("6011"))
    rows: Rows = {k: [] for k in ("event_us", "card", "merchant", "amount")}
    for card in cards.tolist():
        k = min(int(rng.integers(1, 4)), room - len(rows["card"]))
        first = t0 + window + int(rng.uniform(US_PER_DAY / 10, misuse))
        times = first + np.cumsum(rng.integers(10, 60, k)) * US_PER_MIN
        rows["event_us"] += times.tolist()
        rows["card"] += [card] * k
        rows["merchant"] += rng.choice(atms, size=k).tolist()
        rows["amount"] += (np.round(rng.uniform(20, 50, k)) * 10 * ctx.fx[city]).round(2).tolist()
        if len(rows["card"]) >= room:
            break
    used = tuple(str(ctx.world.card_ids[c]) for c in dict.fromkeys(rows["card"]))  # type: ignore[call-overload]
    incident = Incident(
        "compromised_terminal", t0, used, str(ctx.world.merchant_ids[terminal]), len(rows["card"])
    )
    return rows, incident


def _merchant_collusion(ctx: Context, room: int) -> tuple[Rows, Incident]:
    """A colluding merchant runs many high amounts on unrelated cards from elsewhere."""
    rng, w = ctx.rng, ctx.world
    merchant = int(rng.choice(ctx.merchants(None, _mcc("5944", "5311", "7011"))))
    city = int(w.merchant_city[merchant])
    n = min(int(rng.integers(10, 31)), room)
    span = int(rng.uniform(1, 4) * US_PER_DAY)
    t = np.sort(ctx.start(span) + rng.integers(0, span, n))
    strangers = np.flatnonzero(w.customer_city[w.card_customer] != city)
    cards = rng.choice(strangers, size=n, replace=False)
    amount = rng.lognormal(np.log(900.0), 0.5, n) * ctx.fx[city]
    rows: Rows = {
        "event_us": t.tolist(),
        "card": cards.tolist(),
        "merchant": [merchant] * n,
        "amount": np.round(amount, 2).tolist(),
    }
    used = tuple(str(c) for c in w.card_ids[cards])
    return rows, Incident("merchant_collusion", int(t[0]), used, str(w.merchant_ids[merchant]), n)


def _impossible_travel(ctx: Context, room: int) -> tuple[Rows, Incident] | None:
    """A card present in a far city minutes after a genuine card-present purchase at home."""
    rng, g, w = ctx.rng, ctx.genuine, ctx.world
    anchor = int(rng.choice(np.flatnonzero(ctx.genuine_channel != CHANNELS.index("ecom"))))
    card = int(g.card[anchor])
    city = ctx.far_city(int(w.merchant_city[g.merchant[anchor]]))
    n = min(int(rng.integers(1, 3)), room)
    t = int(g.event_us[anchor]) + np.cumsum(rng.integers(5, 60, n)) * US_PER_MIN
    if t[-1] >= ctx.end_us:
        return None
    pool = ctx.merchants([city], _mcc("5411", "5311", "5812", "5732", "5944"))
    merchant = rng.choice(pool[w.merchant_channel[pool] == 0], size=n)
    amount = ctx.spend(card) * rng.uniform(80, 400, n) * ctx.fx[city]
    rows: Rows = {
        "event_us": t.tolist(),
        "card": [card] * n,
        "merchant": merchant.tolist(),
        "amount": np.round(amount, 2).tolist(),
    }
    return rows, Incident("impossible_travel", int(t[0]), (str(w.card_ids[card]),), None, n)


def _high_amount(ctx: Context, room: int) -> tuple[Rows, Incident]:
    """One purchase far above the card holder's habits at a shop in their home city."""
    rng, w = ctx.rng, ctx.world
    card = int(rng.integers(len(w.card_ids)))
    city = ctx.home_city(card)
    merchant = int(rng.choice(ctx.merchants([city], _mcc("5944", "5311", "7011"))))
    amount = ctx.spend(card) * rng.uniform(1500, 4000) * ctx.fx[city]
    t = ctx.start(US_PER_S)
    rows: Rows = {"event_us": [t], "card": [card], "merchant": [merchant], "amount": [amount]}
    rows["amount"] = [round(amount, 2)]
    return rows, Incident("high_amount", t, (str(w.card_ids[card]),), None, 1)


def _laundering_merchant(ctx: Context, room: int) -> tuple[Rows, Incident]:
    """A merchant front cashing stolen card numbers for weeks (transaction laundering).

    Online purchases at its category's usual amounts on cards from anywhere, a few a day
    among its genuine sales, until the acquirer closes it when the chargebacks pile up
    (2-6 weeks). No single transaction gives it away: only the merchant's labelled
    history does, so its signal arrives as slowly as its labels.
    """
    rng, w = ctx.rng, ctx.world
    pool = np.flatnonzero(w.merchant_channel == CHANNELS.index("ecom"))
    merchant = int(rng.choice(pool))
    span = int(min(rng.uniform(14, 42) * US_PER_DAY, 0.5 * (ctx.end_us - ctx.start_us)))
    n = min(int(rng.integers(30, 121)), room, len(w.card_ids))
    t = np.sort(ctx.start(span) + rng.integers(0, span, n))
    cards = rng.choice(len(w.card_ids), size=n, replace=False)
    spend = w.customer_spend[w.card_customer[cards]]
    rows: Rows = {
        "event_us": t.tolist(),
        "card": cards.tolist(),
        "merchant": [merchant] * n,
        "amount": local_amounts(rng, w, np.full(n, merchant), spend).tolist(),
    }
    used = tuple(str(c) for c in w.card_ids[cards])
    return rows, Incident("laundering_merchant", int(t[0]), used, str(w.merchant_ids[merchant]), n)


Scenario = Callable[[Context, int], "tuple[Rows, Incident] | None"]
_SCENARIOS: dict[str, tuple[Scenario, bool]] = {
    # name: (incident builder, whether its rows carry a device and IP)
    "card_testing": (_card_testing, True),
    "account_takeover": (_account_takeover, True),
    "compromised_terminal": (_compromised_terminal, False),
    "merchant_collusion": (_merchant_collusion, False),
    "impossible_travel": (_impossible_travel, False),
    "high_amount": (_high_amount, False),
    "laundering_merchant": (_laundering_merchant, False),
}


def fraud(ctx: Context, name: str, target: int) -> tuple[Draft, list[Incident]]:
    """Exactly ``target`` fraudulent transactions of scenario ``name`` (fewer only if the
    world offers no opportunity, e.g. no genuine traffic to skim)."""
    build, with_device = _SCENARIOS[name]
    code = SCENARIOS.index(name) + 1
    parts: list[Draft] = []
    incidents: list[Incident] = []
    produced, attempts = 0, 0
    while produced < target and attempts < 20 * target + 100:
        attempts += 1
        made = build(ctx, target - produced)
        if made is None:
            continue
        rows, incident = made
        parts.append(draft_from_lists(rows, code, device=with_device))
        incidents.append(incident)
        produced += len(rows["event_us"])
    if not parts:
        return draft_from_lists(
            {k: [] for k in ("event_us", "card", "merchant", "amount")}, code, device=False
        ), []
    return Draft.concat(parts), incidents
