"""The simulated world: places, merchant categories, customers with cards, merchants.

Entities are stored column-wise (numpy arrays indexed by entity number) so that
transactions can be drawn for all customers at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class City:
    name: str
    country: str
    currency: str
    lat: float
    lon: float
    weight: float  # share of customers living there (0: only merchants)
    fx: float  # units of the local currency per euro, for plausible amounts


CITIES: tuple[City, ...] = (
    City("Berlin", "DE", "EUR", 52.52, 13.40, 0.14, 1.0),
    City("Munich", "DE", "EUR", 48.14, 11.58, 0.08, 1.0),
    City("Hamburg", "DE", "EUR", 53.55, 9.99, 0.07, 1.0),
    City("Paris", "FR", "EUR", 48.86, 2.35, 0.12, 1.0),
    City("Lyon", "FR", "EUR", 45.76, 4.84, 0.05, 1.0),
    City("Madrid", "ES", "EUR", 40.42, -3.70, 0.08, 1.0),
    City("Rome", "IT", "EUR", 41.90, 12.50, 0.07, 1.0),
    City("Amsterdam", "NL", "EUR", 52.37, 4.90, 0.06, 1.0),
    City("Vienna", "AT", "EUR", 48.21, 16.37, 0.04, 1.0),
    City("Warsaw", "PL", "PLN", 52.23, 21.01, 0.06, 4.3),
    City("London", "GB", "GBP", 51.51, -0.13, 0.10, 0.85),
    City("Stockholm", "SE", "SEK", 59.33, 18.07, 0.04, 11.5),
    City("Zurich", "CH", "CHF", 47.38, 8.54, 0.03, 0.95),
    City("New York", "US", "USD", 40.71, -74.01, 0.04, 1.08),
    City("Chicago", "US", "USD", 41.88, -87.63, 0.02, 1.08),
    City("Sao Paulo", "BR", "BRL", -23.55, -46.63, 0.0, 5.9),
    City("Lagos", "NG", "NGN", 6.52, 3.38, 0.0, 1700.0),
    City("Singapore", "SG", "SGD", 1.35, 103.82, 0.0, 1.45),
    City("Bangkok", "TH", "THB", 13.76, 100.50, 0.0, 38.0),
)


@dataclass(frozen=True)
class Category:
    mcc: str
    name: str
    channel: str  # pos, ecom or atm
    median_eur: float  # typical amount for an average customer
    sigma: float  # spread of log(amount)
    weight: float  # share of merchants and of genuine spending frequency


CATEGORIES: tuple[Category, ...] = (
    Category("5411", "grocery", "pos", 35.0, 0.6, 0.22),
    Category("5812", "restaurant", "pos", 28.0, 0.5, 0.13),
    Category("5814", "fast food", "pos", 9.0, 0.4, 0.10),
    Category("5541", "fuel", "pos", 55.0, 0.3, 0.07),
    Category("5912", "pharmacy", "pos", 18.0, 0.6, 0.05),
    Category("5311", "department store", "pos", 60.0, 0.8, 0.05),
    Category("4111", "transit", "pos", 3.5, 0.3, 0.06),
    Category("4121", "taxi", "pos", 18.0, 0.5, 0.04),
    Category("7011", "hotel", "pos", 140.0, 0.6, 0.01),
    Category("5944", "jewelry", "pos", 250.0, 0.9, 0.005),
    Category("5732", "electronics", "ecom", 180.0, 0.9, 0.03),
    Category("5999", "online retail", "ecom", 40.0, 0.9, 0.10),
    Category("5815", "digital goods", "ecom", 9.0, 0.7, 0.06),
    Category("4814", "telecom", "ecom", 30.0, 0.4, 0.02),
    Category("6011", "cash withdrawal", "atm", 100.0, 0.5, 0.045),
)
CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm")
FAVOURITES = 24  # merchants each customer shops at


@dataclass(frozen=True)
class World:
    """Customers, cards and merchants; entity attributes are aligned arrays."""

    # customers
    customer_ids: np.ndarray  # str
    customer_city: np.ndarray  # int index into CITIES
    customer_spend: np.ndarray  # float multiplier of category medians
    customer_rate: np.ndarray  # float mean transactions per day
    customer_device: np.ndarray  # str
    customer_ip: np.ndarray  # str
    favourites: np.ndarray  # int (customers, FAVOURITES) merchant indices
    # cards
    card_ids: np.ndarray  # str
    card_customer: np.ndarray  # int index into customers
    # merchants
    merchant_ids: np.ndarray  # str
    merchant_city: np.ndarray  # int index into CITIES
    merchant_category: np.ndarray  # int index into CATEGORIES
    merchant_lat: np.ndarray  # float
    merchant_lon: np.ndarray  # float

    @cached_property
    def merchant_channel(self) -> np.ndarray:
        """Index into CHANNELS of each merchant's channel."""
        codes = np.array([CHANNELS.index(c.channel) for c in CATEGORIES], dtype=np.int8)
        channel: np.ndarray = codes[self.merchant_category]
        return channel


def _tokens(rng: np.random.Generator, prefix: str, n: int) -> np.ndarray:
    """``n`` distinct random-looking ids such as ``card-3fa94c01d2e7``."""
    values = rng.choice(2**47, size=n, replace=False) + 2**47
    return np.array([f"{prefix}-{v:012x}" for v in values.tolist()], dtype=object)


def _ips(rng: np.random.Generator, city: np.ndarray) -> np.ndarray:
    """IPv4 addresses whose first two octets depend on the city (a crude geo-IP)."""
    first = 20 + city * 7
    rest = rng.integers(0, 256, size=(len(city), 3))
    return np.array(
        [f"{a}.{b}.{c}.{d}" for a, (b, c, d) in zip(first.tolist(), rest.tolist(), strict=True)],
        dtype=object,
    )


def _merchants(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    city_w = np.array([max(c.weight, 0.02) for c in CITIES])
    city = rng.choice(len(CITIES), size=n, p=city_w / city_w.sum())
    cat_w = np.array([c.weight for c in CATEGORIES])
    category = rng.choice(len(CATEGORIES), size=n, p=cat_w / cat_w.sum())
    # every city has at least one merchant of every category
    k = len(CITIES) * len(CATEGORIES)
    city[:k] = np.repeat(np.arange(len(CITIES)), len(CATEGORIES))
    category[:k] = np.tile(np.arange(len(CATEGORIES)), len(CITIES))
    lat = np.array([c.lat for c in CITIES])[city] + rng.normal(0, 0.04, n)
    lon = np.array([c.lon for c in CITIES])[city] + rng.normal(0, 0.06, n)
    return {"city": city, "category": category, "lat": lat.round(5), "lon": lon.round(5)}


def _favourites(
    rng: np.random.Generator, customer_city: np.ndarray, m: dict[str, np.ndarray]
) -> np.ndarray:
    """Each customer's merchants: local shops, ATMs and ecom sites anywhere in the home country."""
    n = len(customer_city)
    fav = np.empty((n, FAVOURITES), dtype=np.int64)
    cat_w = np.array([c.weight for c in CATEGORIES])[m["category"]]
    is_ecom = np.array([c.channel == "ecom" for c in CATEGORIES])[m["category"]]
    country = np.array([c.country for c in CITIES])
    for city in np.unique(customer_city):
        members = np.flatnonzero(customer_city == city)
        local = np.flatnonzero((m["city"] == city) & ~is_ecom)
        online = np.flatnonzero(is_ecom & (country[m["city"]] == country[city]))
        if len(online) == 0:
            online = np.flatnonzero(is_ecom)
        n_online = FAVOURITES // 4
        p_local = cat_w[local] / cat_w[local].sum()
        p_online = cat_w[online] / cat_w[online].sum()
        fav[members, n_online:] = rng.choice(
            local, size=(len(members), FAVOURITES - n_online), p=p_local
        )
        fav[members, :n_online] = rng.choice(online, size=(len(members), n_online), p=p_online)
    return fav


def build_world(rng: np.random.Generator, customers: int, merchants: int, rate: float) -> World:
    """A world of ``customers`` card holders (1-2 cards each) and ``merchants`` merchants."""
    city_w = np.array([c.weight for c in CITIES])
    customer_city = rng.choice(len(CITIES), size=customers, p=city_w / city_w.sum())
    cards_per = np.where(rng.random(customers) < 0.3, 2, 1)
    m = _merchants(rng, merchants)
    return World(
        customer_ids=_tokens(rng, "cust", customers),
        customer_city=customer_city,
        customer_spend=rng.lognormal(0.0, 0.35, customers),
        customer_rate=rng.gamma(2.0, rate / 2.0, customers),
        customer_device=_tokens(rng, "dev", customers),
        customer_ip=_ips(rng, customer_city),
        favourites=_favourites(rng, customer_city, m),
        card_ids=_tokens(rng, "card", int(cards_per.sum())),
        card_customer=np.repeat(np.arange(customers), cards_per),
        merchant_ids=_tokens(rng, "merch", merchants),
        merchant_city=m["city"],
        merchant_category=m["category"],
        merchant_lat=m["lat"],
        merchant_lon=m["lon"],
    )
