"""A synthetic shop whose raw events look and misbehave like real ones.

Why synthetic data at all: ``shopflow`` must run end to end with no file (docs/DESIGN.md §3), the
tests need data of any size in seconds, and the benchmarks need 10M events. The generator is
built so that the prediction task is *learnable but not trivial*: users have a latent
purchase propensity and an activity level; both show up only noisily in their past
behaviour (recency, frequency, carts), so a model that reads that behaviour beats chance
clearly without reaching certainty.

The model, in one paragraph: users join and churn at random times over the period, and
while active they start sessions as a Poisson process (more at weekends and in the evening,
a mild upward trend). A session browses one category (mostly the user's favourite ones),
views items by Zipf popularity, may put some in the cart and may buy them (a few per cent of
sessions buy; more for high-propensity users, which makes repeat buyers). Some purchased
lines are returned days later (``return``, negative quantity, same order). Then the real-world
mess is injected at configurable rates: missing user ids, duplicate events, zero or
negative prices, and late-arriving events that appear in the file after newer ones.

A period shorter than a day (``generator.period: 6h``) gives a minute-level clickstream
instead: the same shop and funnel with no weekday or hour rhythm, and every time constant
that is measured in days above (lifetimes, monthly moods, returns 1-21 days later, late
arrivals days late) scaled to a share of the period (see :class:`_Clock`). It has more
visitors per event and a lower purchase rate per session, so that at a 30-minute horizon
about 1-2% of (user, cutoff) rows are positive. Periods of whole days are unchanged.

Two knobs (both off by default, byte-identical when off) add what real shoppers do with a
cart, which activity counts alone do not show: ``cart_return_rate`` brings some shoppers
back in a later session to buy a cart they left, and ``checkout_minutes`` makes buying a
step of its own: a session that buys goes on after its carts (views of the carted items,
the checkout) and pays minutes later, while a session that carts without buying ends at
the cart. In a real clickstream a purchase mostly happens within the same active session
shortly after a cart, so "an open cart *and* an event a minute ago" says a purchase is
coming while either alone says little: an interaction that a model summing log-odds of
counts cannot read (``configs/clickstream.yaml`` sets both).

Everything is vectorised numpy over sessions and events, written chunk by chunk (memory
bounded by ``chunk_events``), and fully determined by the parameters: the same arguments
give byte-identical files (Parquet, CSV or gzipped CSV, whose gzip header carries no time).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

    from shopflow.settings import GeneratorSettings

logger = logging.getLogger(__name__)

OutputFormat = Literal["parquet", "csv", "csv.gz"]

#: First instant of every synthetic period (a Monday), so data never depends on "now".
START = np.datetime64("2024-01-01T00:00:00", "s")
_DAY = 86_400.0

# Shape of the shop; fixed so that only the documented knobs change the data.
_DOW_WEIGHTS = np.array([0.92, 0.95, 1.0, 1.0, 1.05, 1.3, 1.25])  # Monday .. Sunday
_HOUR_WEIGHTS = np.array(
    [0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.55, 0.8, 0.95, 1.0, 1.1,
     1.25, 1.2, 1.05, 1.0, 1.0, 1.1, 1.3, 1.5, 1.6, 1.45, 1.05, 0.6]
)
_TREND = 0.25  # the shop grows: session rate rises by this fraction over the period
_MEAN_VIEW_GAP_S = 50.0
_MAX_VIEWS = 40
_MAX_QUANTITY = 48
_RETURN_DAYS = (1.0, 21.0)
_LATE_MEAN_DAYS = 3.0
_INTENT_PERSISTENCE = 0.8  # correlation of a user's monthly intent with their propensity


@dataclass(frozen=True)
class _Clock:
    """The time constants of a period: the day-scale shop's, or scaled to a shorter one.

    A period of whole days keeps the constants above (weekly and daily rhythm, monthly
    moods, returns days later), so existing parameters give the same bytes. A period under a
    day is a minute-level clickstream: no weekday or hour rhythm (a few hours have none to
    speak of), and every constant that would not fit (lifetimes of at least 3 days, moods by
    month, returns 1-21 days later, late arrivals days late) becomes a share of the period.
    """

    days: float  # the period in days (a fraction under a day)
    seconds: int  # the period in seconds
    seasonal: bool  # weekday/hour thinning and monthly moods (the day-scale shop)
    min_lifetime_days: float  # added to every user's exponential lifetime
    mood_days: float  # length of a mood (activity) and intent spell (sub-day only)
    return_days: tuple[float, float]  # a return comes this long after its purchase
    late_mean_s: float  # a late row arrives late_min_s + exponential(late_mean_s) late
    late_min_s: float
    end_margin_s: float  # no session starts this close to the end of the period
    buy_logit: float  # log-odds of buying a cart, for a user of average intent
    cart_return_mean_s: float  # mean delay of a session that buys an abandoned cart
    events_per_user: int  # the default number of users is events / events_per_user
    checkout_s: float = 0.0  # mean checkout of a session that buys (generator.checkout_minutes)


def _clock(params: GeneratorSettings) -> _Clock:
    clock = _period_clock(params)
    return dataclasses.replace(clock, checkout_s=60.0 * params.checkout_minutes)


def _period_clock(params: GeneratorSettings) -> _Clock:
    seconds = params.period_seconds
    if not params.sub_day:
        return _Clock(days=seconds // int(_DAY), seconds=seconds, seasonal=True,
                      min_lifetime_days=3.0, mood_days=30.0, return_days=_RETURN_DAYS,
                      late_mean_s=_LATE_MEAN_DAYS * _DAY, late_min_s=3600.0,
                      end_margin_s=3600.0, buy_logit=-1.3, cart_return_mean_s=1.5 * _DAY,
                      events_per_user=40)
    # Sub-day, as shares of the period (for a 6h stream): lifetimes of at least 9 minutes,
    # moods and intent that change every 90 minutes (between a 60m lookback and a 30m
    # horizon, the past predicts the future only noisily), returns 15 minutes to 2 hours
    # after the purchase, late rows 1 minute + ~9 minutes late, and no session starting
    # in the last 5 minutes. A clickstream also has more visitors per event (about 3
    # sessions each on average, a long tail of heavy users) and fewer carts end in a
    # purchase (about 2% of sessions buy): about 1-2% of (user, cutoff) rows are positive
    # at a 30m horizon (60m lookback, cutoffs every 10m).
    fraction = seconds / _DAY
    return _Clock(days=fraction, seconds=seconds, seasonal=False,
                  min_lifetime_days=fraction / 40, mood_days=fraction / 4,
                  return_days=(fraction / 24, fraction / 3),
                  late_mean_s=seconds / 40, late_min_s=60.0,
                  end_margin_s=min(3600.0, seconds / 72), buy_logit=-2.4,
                  cart_return_mean_s=seconds / 24, events_per_user=10)


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate_events` wrote."""

    path: Path
    format: str
    rows: int
    users: int
    items: int
    sessions: int
    purchase_sessions: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def output_format(path: str | Path, fmt: str | None = None) -> OutputFormat:
    """The output format named by ``fmt`` or, when None, by the file name's suffix."""
    if fmt is not None:
        if fmt not in ("parquet", "csv", "csv.gz"):
            raise ValueError(f"unknown output format {fmt!r}: use parquet, csv or csv.gz")
        return fmt  # type: ignore[return-value]
    name = str(path).lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".csv.gz"):
        return "csv.gz"
    if name.endswith(".csv"):
        return "csv"
    raise ValueError(
        f"cannot tell the output format from {path}: end the name in .parquet, .csv or "
        ".csv.gz, or pass the format"
    )


def parameters_fingerprint(params: GeneratorSettings) -> str:
    """A short hash of everything that determines the data (names reusable files)."""
    payload = json.dumps(params.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------
# the shop: users, items, categories
# --------------------------------------------------------------------------------------
@dataclass
class _Shop:
    clock: _Clock
    user_ids: pa.Array  # string ids, index = user number
    item_ids: pa.Array
    category_ids: pa.Array
    # users
    propensity: np.ndarray  # latent; drives cart and buy probabilities
    rate: np.ndarray  # sessions per active day (relative)
    active_from: np.ndarray  # days since START (fractions of a day in a sub-day period)
    active_to: np.ndarray
    fav: np.ndarray  # (users, 2) favourite categories
    # categories and items
    cat_pop: np.ndarray  # cumulative popularity of categories
    cat_start: np.ndarray  # first item index of each category (items sorted by category)
    cat_size: np.ndarray
    item_price: np.ndarray


def _default_users(events: int, events_per_user: int = 40) -> int:
    return max(50, events // events_per_user)


def _default_items(events: int) -> int:
    return int(np.clip(events // 100, 50, 50_000))


def _build_shop(params: GeneratorSettings, rng: np.random.Generator) -> _Shop:
    import pyarrow as pa

    clock = _clock(params)
    n_users = params.users or _default_users(params.events, clock.events_per_user)
    n_items = max(params.items or _default_items(params.events), params.categories)
    n_cats = params.categories
    days = clock.days

    # Latent propensity drives both cart and buy probability; activity is only weakly tied
    # to it, so "active" and "buys" are different signals a model has to combine.
    propensity = rng.standard_normal(n_users)
    activity = 0.35 * propensity + np.sqrt(1 - 0.35**2) * rng.standard_normal(n_users)
    rate = np.exp(0.85 * activity)  # relative; scaled to the event budget later

    # Lifetimes: users join over (and a little before) the period and churn at random, so
    # activity spans the whole period while no user is active every week.
    joined = rng.uniform(-0.3 * days, 0.95 * days, n_users)
    lifetime = rng.exponential(0.9 * days, n_users) + clock.min_lifetime_days
    active_from = np.clip(joined, 0.0, days)
    active_to = np.clip(joined + lifetime, 0.0, days)

    # Categories have Zipf popularity; each user has two favourites drawn by popularity.
    cat_weights = 1.0 / np.arange(1, n_cats + 1)
    cat_weights /= cat_weights.sum()
    cat_pop = np.cumsum(cat_weights)
    fav = np.searchsorted(cat_pop, rng.random((n_users, 2)) * cat_pop[-1], side="right")
    fav = np.minimum(fav, n_cats - 1)

    # Items are grouped by category (bigger assortments for popular categories).
    sizes = np.maximum(1, np.floor(n_items * (0.5 / n_cats + 0.5 * cat_weights))).astype(np.int64)
    cat_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_items = int(sizes.sum())
    cat_level = np.exp(rng.normal(2.6, 0.7, n_cats))  # typical price per category
    item_cat = np.repeat(np.arange(n_cats), sizes)
    item_price = np.round(np.maximum(0.5, cat_level[item_cat] * np.exp(rng.normal(0, 0.45, n_items))), 2)

    # Ids are strings; item numbers are shuffled so popularity does not follow the id.
    item_numbers = rng.permutation(n_items) + 100_000
    return _Shop(
        clock=clock,
        user_ids=pa.array(np.arange(n_users) + 10_000).cast(pa.string()),
        item_ids=pa.array(item_numbers).cast(pa.string()),
        category_ids=pa.array([f"cat_{c:03d}" for c in range(n_cats)], pa.string()),
        propensity=propensity,
        rate=rate,
        active_from=active_from,
        active_to=active_to,
        fav=fav,
        cat_pop=cat_pop,
        cat_start=cat_start,
        cat_size=sizes,
        item_price=item_price,
    )


# --------------------------------------------------------------------------------------
# sessions: who, when, how far down the funnel
# --------------------------------------------------------------------------------------
@dataclass
class _Sessions:
    user: np.ndarray
    start: np.ndarray  # seconds since START
    category: np.ndarray
    views: np.ndarray
    lines: np.ndarray  # carted lines (0 when nothing carted)
    purchased: np.ndarray  # bool
    returns: np.ndarray  # purchase lines returned (within the period)
    return_delay: np.ndarray  # seconds from session start to the return
    keep: np.ndarray  # events kept (all but for the one session cut to hit the budget)
    basket: np.ndarray  # -1, or a key shared by a cart session and the later one that buys it
    checkout: np.ndarray  # views of the carted items between the carts and the purchase

    def __len__(self) -> int:
        return len(self.start)

    @property
    def events(self) -> np.ndarray:
        views, lines = self.views.astype(np.int64), self.lines.astype(np.int64)
        counts: np.ndarray = np.minimum(
            views + lines + self.checkout.astype(np.int64) + lines * self.purchased
            + self.returns, self.keep)
        return counts

    def take(self, index: np.ndarray) -> _Sessions:
        return _Sessions(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})


def _draw_sessions(shop: _Shop, params: GeneratorSettings, scale: float,
                   rng: np.random.Generator) -> _Sessions:
    clock = shop.clock
    days = clock.days
    span = shop.active_to - shop.active_from
    counts = rng.poisson(scale * shop.rate * span)
    user = np.repeat(np.arange(len(span)), counts)
    if clock.seasonal:
        day = np.floor(shop.active_from[user] + rng.random(len(user)) * span[user])
        hour = np.searchsorted(np.cumsum(_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()),
                               rng.random(len(user)))
        start = (day + (np.minimum(hour, 23) + rng.random(len(user))) / 24.0) * _DAY
        # Thinning by weekday and trend keeps the process Poisson while shaping the season.
        accept = _DOW_WEIGHTS[day.astype(np.int64) % 7] / _DOW_WEIGHTS.max()
        accept *= (1.0 - _TREND) + _TREND * day / days
        # Moods: each user's activity changes from month to month, so the past predicts
        # the future only noisily (what keeps the task from being trivial).
        months = day.astype(np.int64) // 30
        mood = rng.uniform(0.05, 1.0, (len(span), int(days) // 30 + 1))
    else:
        # A clickstream of hours: sessions uniform over each user's active span (no
        # weekday or hour rhythm), the same trend, moods by spells of clock.mood_days.
        start = (shop.active_from[user] + rng.random(len(user)) * span[user]) * _DAY
        accept = (1.0 - _TREND) + _TREND * start / clock.seconds
        months = np.floor(start / (clock.mood_days * _DAY)).astype(np.int64)
        mood = rng.uniform(0.05, 1.0, (len(span), int(np.ceil(days / clock.mood_days)) + 1))
    accept *= mood[user, months]
    # ... and so does their intent to buy (a monthly shock around the latent propensity).
    intent = (_INTENT_PERSISTENCE * shop.propensity[:, None]
              + np.sqrt(1 - _INTENT_PERSISTENCE**2) * rng.standard_normal(mood.shape))
    kept = (rng.random(len(user)) < accept) & (start < days * _DAY - clock.end_margin_s)
    user, start, months = user[kept], np.floor(start[kept]), months[kept]
    order = np.argsort(start, kind="stable")
    user, start, months = user[order], start[order], months[order]
    n = len(user)
    z = intent[user, months]
    p_cart = 1.0 / (1.0 + np.exp(-(-2.6 + 0.9 * z)))
    p_buy = 1.0 / (1.0 + np.exp(-(shop.clock.buy_logit + 0.8 * z)))

    pick = rng.random(n)
    random_cat = np.minimum(
        np.searchsorted(shop.cat_pop, rng.random(n) * shop.cat_pop[-1], side="right"),
        len(shop.cat_pop) - 1,
    )
    category = np.where(pick < 0.55, shop.fav[user, 0],
                        np.where(pick < 0.8, shop.fav[user, 1], random_cat))
    views = np.minimum(rng.geometric(0.38, n), _MAX_VIEWS)
    carted = rng.random(n) < p_cart
    lines = np.where(carted, np.minimum(rng.geometric(0.6, n), views), 0)
    purchased = carted & (rng.random(n) < p_buy)
    return_delay = rng.uniform(*clock.return_days, n) * _DAY
    returns = np.where(purchased, rng.binomial(lines, params.return_rate), 0)
    returns = np.where(start + return_delay < days * _DAY, returns, 0)
    basket = np.full(n, -1, dtype=np.int64)
    sessions = _Sessions(
        user=user, start=start, category=category, views=views, lines=lines,
        purchased=purchased, returns=returns, return_delay=return_delay,
        keep=np.zeros(n), basket=basket, checkout=np.zeros(n, dtype=np.int64),
    )
    if params.cart_return_rate > 0:
        sessions = _with_cart_returns(sessions, clock, params, carted & ~purchased, rng)
    if params.checkout_minutes > 0:
        sessions = _with_checkout(sessions, rng)
    # Compact dtypes: the session plan is what scales with the number of events.
    big = np.iinfo(np.int32).max
    return _Sessions(
        user=sessions.user.astype(np.int32),
        start=sessions.start.astype(np.int64),
        category=sessions.category.astype(np.int32),
        views=sessions.views.astype(np.int16),
        lines=sessions.lines.astype(np.int16),
        purchased=sessions.purchased,
        returns=sessions.returns.astype(np.int16),
        return_delay=sessions.return_delay.astype(np.int32),
        keep=np.full(len(sessions), big, dtype=np.int32),
        basket=sessions.basket,
        checkout=sessions.checkout.astype(np.int16),
    )


def _with_cart_returns(s: _Sessions, clock: _Clock, params: GeneratorSettings,
                       abandoned: np.ndarray, rng: np.random.Generator) -> _Sessions:
    """Add the sessions in which shoppers come back and buy a cart they left.

    A share ``cart_return_rate`` of the sessions that carted without buying is followed,
    after an exponential delay (mean ``clock.cart_return_mean_s``: 1.5 days in a day-scale
    shop, a 24th of a sub-day period), by a session of the same user that views the carted
    items again and buys them: the "carted, not bought yet" signal of real shops, which
    activity counts alone do not carry. Both sessions share a ``basket`` key, so they
    draw the same items (:func:`_expand`). Drawn after every other draw of the session
    plan, so a rate of 0 leaves the file byte-identical to before the knob existed.
    """
    n = len(s)
    back = abandoned & (rng.random(n) < params.cart_return_rate)
    back_start = s.start + np.floor(rng.exponential(clock.cart_return_mean_s, n))
    back &= back_start < clock.days * _DAY - clock.end_margin_s
    keys = rng.integers(0, 2**62, n)
    return_delay = rng.uniform(*clock.return_days, n) * _DAY
    returns = rng.binomial(s.lines, params.return_rate)
    returns = np.where(back_start + return_delay < clock.days * _DAY, returns, 0)
    s = dataclasses.replace(s, basket=np.where(back, keys, s.basket))
    follow = _Sessions(
        user=s.user[back], start=back_start[back], category=s.category[back],
        views=s.lines[back], lines=s.lines[back], purchased=np.ones(int(back.sum()), bool),
        returns=returns[back], return_delay=return_delay[back], keep=s.keep[back],
        basket=s.basket[back], checkout=s.checkout[back],
    )
    merged = _Sessions(**{name: np.concatenate([getattr(s, name), getattr(follow, name)])
                          for name in s.__dataclass_fields__})
    return merged.take(np.argsort(merged.start, kind="stable"))


#: Views of the carted items in a checkout: geometric from 1, 4 on average.
_CHECKOUT_VIEWS_P = 0.25


def _with_checkout(s: _Sessions, rng: np.random.Generator) -> _Sessions:
    """Give every session that buys a checkout between its carts and its purchase.

    Real shoppers who buy do not pay the instant they cart: they go on in the same session
    (view the cart, compare, fill in the checkout) and pay minutes later, while most
    sessions that cart without buying end at the cart. So "an open cart *and* an event a
    minute ago" means a purchase is coming; either alone means little (an open cart an
    hour old was abandoned; a minute-old event without a cart is browsing). Only a model
    that combines the two (an interaction, not a sum of log-odds) reads it. The checkout
    is ``checkout`` views of the carted items (geometric from 1, 4 on average) over
    ``generator.checkout_minutes`` on average (:func:`_expand`). Drawn after every other
    draw of the session plan, so 0 minutes leaves the file byte-identical.
    """
    views = np.where(s.purchased, rng.geometric(_CHECKOUT_VIEWS_P, len(s)), 0)
    return dataclasses.replace(s, checkout=views.astype(np.int64))


def _sessions_for_budget(shop: _Shop, params: GeneratorSettings, budget: int,
                         seed: np.random.SeedSequence) -> _Sessions:
    """Draw a few more sessions than needed, then keep a random subset totalling ``budget``.

    Dropping whole sessions at random (not the last ones) keeps the season and the funnel
    intact; only one session is cut short so the file has exactly the requested rows.
    """
    span_days = float(np.sum(shop.rate * (shop.active_to - shop.active_from)))
    mean_events = 3.1  # rough events per session, corrected by the loop below
    scale = 1.15 * budget / max(span_days * mean_events * 0.8, 1e-9)
    for attempt_seed in seed.spawn(8):
        rng = np.random.default_rng(attempt_seed)
        sessions = _draw_sessions(shop, params, scale, rng)
        events = sessions.events
        total = int(events.sum())
        if total >= budget:
            order = rng.permutation(len(sessions))
            cumulative = np.cumsum(events[order])
            last = int(np.searchsorted(cumulative, budget))
            chosen = np.sort(order[: last + 1])
            already = int(cumulative[last - 1]) if last > 0 else 0
            sessions.keep[order[last]] = budget - already
            return sessions.take(chosen)
        scale *= 1.2 * budget / max(total, 1)
    raise RuntimeError(
        f"could not draw {budget} events from {len(shop.propensity)} users over "
        f"{shop.clock.seconds / _DAY:g} days; use more users or a longer period"
    )


# --------------------------------------------------------------------------------------
# events: expand sessions, inject mess
# --------------------------------------------------------------------------------------
def _expand(shop: _Shop, s: _Sessions, first_session: int,
            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One row per event of the sessions, in session order (columns as numpy arrays)."""
    counts = s.events
    total = int(counts.sum())
    sess = np.repeat(np.arange(len(s)), counts)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(total) - offsets[sess]
    views, lines = s.views[sess].astype(np.int64), s.lines[sess].astype(np.int64)
    bought = lines * s.purchased[sess]
    checkout = s.checkout[sess].astype(np.int64)  # 0 unless generator.checkout_minutes
    paid = views + lines + checkout  # first purchase row of the session
    # Row layout of a session: views, carts, checkout views (of the carted items, in turn),
    # purchases, returns (a cut session keeps a prefix).
    kind = np.select(
        [pos < views, pos < views + lines, pos < paid, pos < paid + bought],
        [0, 1, 0, 2],
        default=3,
    ).astype(np.int8)
    in_checkout = (pos >= views + lines) & (pos < paid)
    line = pos - np.select([kind == 1, kind == 2, kind == 3], [views, paid, paid + bought],
                           default=0)
    line = np.where(in_checkout, (pos - views - lines) % np.maximum(lines, 1), line)

    # Items: views draw by Zipf popularity within the session's category (log-uniform
    # rank); carts, purchases and returns refer back to the viewed item of their line.
    cat = s.category[sess]
    size = shop.cat_size[cat]
    draw = rng.random(total)
    linked = s.basket[sess] >= 0
    if linked.any():  # a cart session and the session that buys it: the same items
        draw[linked] = _key_uniform(s.basket[sess][linked], pos[linked])
    rank = np.minimum(np.floor(np.power(size + 1.0, draw)) - 1, size - 1)
    item = shop.cat_start[cat] + rank.astype(np.int64)
    source_row = np.where((kind == 0) & ~in_checkout, np.arange(total), offsets[sess] + line)
    item = item[source_row]
    price = np.round(shop.item_price[item] * (1.0 + rng.normal(0.0, 0.05, total)), 2)
    price = np.maximum(price, 0.01)[source_row]
    quantity = np.minimum(rng.geometric(0.6, total), _MAX_QUANTITY)
    quantity = np.where(kind == 0, 1, quantity)
    cart_row = offsets[sess] + views + line  # quantity is decided when carting
    quantity = np.where(kind >= 2, quantity[np.minimum(cart_row, total - 1)], quantity)
    quantity = np.where(kind == 3, -quantity, quantity)

    gaps = rng.exponential(_MEAN_VIEW_GAP_S, total).astype(np.int64) + 1
    if checkout.any():  # the checkout and the purchase: slower steps, minutes in all
        slow = (pos >= views + lines) & (pos <= paid) & (checkout > 0)
        mean_s = shop.clock.checkout_s * _CHECKOUT_VIEWS_P / (1 + _CHECKOUT_VIEWS_P)
        gaps[slow] = rng.exponential(mean_s, int(slow.sum())).astype(np.int64) + 1
    gaps[offsets[counts > 0]] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= elapsed[offsets[sess]]
    seconds = s.start[sess] + elapsed
    seconds = np.where(kind == 3, s.start[sess] + s.return_delay[sess] + line, seconds)
    seconds = np.minimum(seconds, shop.clock.seconds - 1)  # a session never outlives the period
    order_no = np.where(kind >= 2, 1_000_000 + first_session + sess, -1)
    return {
        "user": s.user[sess],
        "item": item,
        "kind": kind,
        "seconds": seconds,
        "price": price,
        "quantity": quantity.astype(np.int32),
        "order": order_no,
        "category": cat,
    }


def _key_uniform(key: np.ndarray, position: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) number per (key, position), the same in every chunk (splitmix64)."""
    x = key.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + position.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    uniform: np.ndarray = (x >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return uniform


_KINDS = np.array(["view", "cart", "purchase", "return"], dtype=object)


def _to_table(shop: _Shop, rows: dict[str, np.ndarray], missing_user: np.ndarray) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    user = shop.user_ids.take(pa.array(rows["user"]))
    if missing_user.any():
        user = pc.if_else(pa.array(missing_user), pa.scalar(None, pa.string()), user)
    order = pa.array(rows["order"], mask=rows["order"] < 0).cast(pa.string())
    kinds = pa.DictionaryArray.from_arrays(pa.array(rows["kind"]), pa.array(_KINDS.tolist()))
    millis = (rows["seconds"] + (START - np.datetime64(0, "s")).astype(np.int64)) * 1000
    return pa.table({
        "user_id": user,
        "item_id": shop.item_ids.take(pa.array(rows["item"])),
        "event_type": kinds.cast(pa.string()),
        "event_time": pa.array(millis, pa.timestamp("ms", tz="UTC")),
        "price": pa.array(rows["price"], pa.float64()),
        "quantity": pa.array(rows["quantity"], pa.int32()),
        "order_id": order,
        "category_id": shop.category_ids.take(pa.array(rows["category"])),
    })


def iter_event_tables(params: GeneratorSettings, *,
                      stats: dict[str, int] | None = None) -> Iterator[pa.Table]:
    """Yield the synthetic events as Arrow tables, in file order, chunk by chunk.

    Exactly ``params.events`` rows in total. Columns follow the event contract
    (docs/DESIGN.md §2) with string ids and UTC ``event_time``. Deterministic in ``params``.
    If ``stats`` is given it is filled with the shop's sizes (users, items, sessions).
    """
    root = np.random.SeedSequence(params.seed)
    shop_seed, session_seed, chunk_seed = root.spawn(3)
    shop = _build_shop(params, np.random.default_rng(shop_seed))
    n_dup = round(params.duplicate_rate * params.events)
    budget = params.events - n_dup
    sessions = _sessions_for_budget(shop, params, budget, session_seed)
    events = sessions.events
    if stats is not None:
        stats.update(
            users=len(shop.propensity),
            items=len(shop.item_price),
            sessions=len(sessions),
            purchase_sessions=int(np.sum(
                sessions.purchased
                & (events > sessions.views + sessions.lines + sessions.checkout))),
        )
    bounds = _chunk_bounds(events, params.chunk_events)
    cumulative = np.concatenate([[0], np.cumsum(events)])
    pending: dict[str, np.ndarray] | None = None
    chunk_seeds = chunk_seed.spawn(max(len(bounds) - 1, 0))
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        rng = np.random.default_rng(chunk_seeds[k])
        rows = _expand(shop, sessions.take(np.arange(lo, hi)), lo, rng)
        n = len(rows["kind"])
        # mess, part 1: prices that are zero or negative
        bad = rng.random(n) < params.bad_price_rate
        rows["price"] = np.where(bad, np.where(rng.random(n) < 0.5, 0.0, -rows["price"]),
                                 rows["price"])
        # mess, part 2: late arrivals appear after newer rows (returns arrive on time)
        late = (rng.random(n) < params.late_event_rate) & (rows["kind"] != 3)
        delay = rng.exponential(shop.clock.late_mean_s, n) + shop.clock.late_min_s
        rows["arrival"] = rows["seconds"] + np.where(late, delay, 0.0)
        # mess, part 3: duplicates (a retried send, shortly after the original)
        want = int((n_dup * cumulative[hi]) // budget - (n_dup * cumulative[lo]) // budget) if budget else 0
        if want and n:
            dup = rng.choice(n, size=min(want, n), replace=False)
            copies = {key: value[dup] for key, value in rows.items()}
            copies["arrival"] = copies["arrival"] + rng.exponential(120.0, len(dup))
            rows = {key: np.concatenate([rows[key], copies[key]]) for key in rows}
        # mess, part 4: missing user ids
        rows["missing_user"] = rng.random(len(rows["kind"])) < params.missing_user_rate
        if pending is not None:
            rows = {key: np.concatenate([pending[key], rows[key]]) for key in rows}
        # Emit what has arrived before the next chunk's first session; hold back the rest.
        if hi < len(sessions):
            due = rows["arrival"] < sessions.start[hi]
        else:
            due = np.ones(len(rows["kind"]), dtype=bool)
        pending = {key: value[~due] for key, value in rows.items()}
        now = {key: value[due] for key, value in rows.items()}
        order = np.argsort(now["arrival"], kind="stable")
        now = {key: value[order] for key, value in now.items()}
        if len(now["kind"]):
            yield _to_table(shop, now, now["missing_user"])


def _chunk_bounds(events: np.ndarray, chunk_events: int) -> list[int]:
    """Session indices that split the sessions into chunks of about ``chunk_events`` rows."""
    cumulative = np.cumsum(events)
    total = int(cumulative[-1]) if len(cumulative) else 0
    marks = np.arange(chunk_events, total, chunk_events)
    inner = np.searchsorted(cumulative, marks, side="right").tolist()
    bounds = sorted({0, *inner, len(events)})
    return bounds


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------
def generate_events(params: GeneratorSettings, out: str | Path, *, fmt: str | None = None,
                    progress: bool = True) -> GenerationSummary:
    """Write ``params.events`` synthetic events to ``out`` (Parquet, CSV or CSV.gz).

    The file is written to a temporary name and renamed at the end, so a crash never
    leaves a half-written file that a later run would mistake for a finished one.

    Args:
        params: sizes, seed and mess rates (``settings.generator``).
        out: the file to write; parent folders are created.
        fmt: ``parquet``, ``csv`` or ``csv.gz``; None: from the suffix of ``out``.
        progress: show a progress bar on stderr.
    """
    import pyarrow.csv  # noqa: F401 - imported before the clock starts
    import pyarrow.parquet  # noqa: F401
    from tqdm import tqdm

    out_path = Path(out)
    kind = output_format(out_path, fmt)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    started = time.perf_counter()
    rows = 0
    bar = tqdm(total=params.events, unit="ev", unit_scale=True, file=sys.stderr,
               disable=not progress, desc=f"generate {out_path.name}")
    shape: dict[str, int] = {}
    try:
        with _open_writer(tmp, kind) as write:
            for table in iter_event_tables(params, stats=shape):
                write(table)
                rows += table.num_rows
                bar.update(table.num_rows)
        os.replace(tmp, out_path)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    logger.info("generated %d events into %s in %.1fs (%.0f rows/s)", rows, out_path, seconds,
                rows / seconds if seconds else 0.0)
    return GenerationSummary(path=out_path, format=kind, rows=rows, seconds=seconds, **shape)


class _open_writer:  # noqa: N801 - used as a context manager factory
    """Context manager giving a ``write(table)`` callable for the chosen format."""

    def __init__(self, path: Path, kind: OutputFormat) -> None:
        self.path, self.kind = path, kind
        self._closers: list[Any] = []

    def __enter__(self) -> Any:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        if self.kind == "parquet":
            writer: Any = None

            def write_parquet(table: pa.Table) -> None:
                nonlocal writer
                if writer is None:
                    writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
                    self._closers.append(lambda: writer.close())
                writer.write_table(table)

            return write_parquet

        raw = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__
        self._closers.append(raw.close)
        sink: Any = raw
        if self.kind == "csv.gz":
            # No file name and mtime 0 in the gzip header: same arguments, same bytes.
            sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1)
            self._closers.insert(0, sink.close)
        csv_writer: Any = None

        def write_csv(table: pa.Table) -> None:
            nonlocal csv_writer
            table = _csv_ready(table)
            if csv_writer is None:
                csv_writer = pacsv.CSVWriter(
                    sink, table.schema, write_options=pacsv.WriteOptions(quoting_style="needed")
                )
                self._closers.insert(0, lambda: csv_writer.close())
            csv_writer.write_table(table)

        return write_csv

    def __exit__(self, *exc_info: object) -> None:
        for close in self._closers:
            close()


def _csv_ready(table: pa.Table) -> pa.Table:
    """Times as ISO-8601 UTC strings (``2024-01-01T08:30:00Z``), as an export would write.

    Built from two small lookup tables (one string per day, one per second of the day)
    with Arrow ``take``: several times faster than formatting a million timestamps.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    seconds = table.column("event_time").cast(pa.timestamp("s", tz="UTC")).cast(pa.int64())
    seconds = seconds.to_numpy()
    day, second_of_day = np.divmod(seconds, 86_400)
    days = np.unique(day)
    day_text = pa.array(np.datetime_as_string(days.astype("datetime64[D]"), unit="D"))
    text = pc.binary_join_element_wise(
        day_text.take(pa.array(np.searchsorted(days, day))),
        _clock_strings().take(pa.array(second_of_day)),
        "T",
    )
    index = table.schema.get_field_index("event_time")
    return table.set_column(index, "event_time", text)


def _clock_strings() -> pa.Array:
    """``HH:MM:SSZ`` for every second of a day."""
    import pyarrow as pa

    second = np.arange(86_400)
    hours, rest = np.divmod(second, 3600)
    minutes, secs = np.divmod(rest, 60)
    return pa.array([f"{h:02d}:{m:02d}:{x:02d}Z" for h, m, x in zip(hours, minutes, secs, strict=True)])
