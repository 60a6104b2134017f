"""Each rule's hit rate and precision over time, against `fraudstream serve` on the real platform:
``GET /rules/stats`` counts scored rows written with their decisions into known hours of a
database of the test's own, with labels, to the exact figure; a label that arrives later
changes the next answer; the window and bucket are checked. The dashboard's rules panel, in
headless Chromium, says when no rule set is active and when no rule fired, then draws a line per
rule and the totals once rows arrive (a screenshot of it under the test's tmp path, printed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg2.extras import execute_values

from fraudstream.adapters.partitions import ensure_days, utc_day
from fraudstream.adapters.postgres import connect
from fraudstream.settings import Settings
from tests.integration.api_support import (
    World,
    blocking_rule_set,
    named,
    reader_headers,
    serve,
    writer_headers,
)
from tests.integration.conftest import scratch_env

CHROMIUM = Path("/usr/bin/chromium")
REPLAYED = datetime(2026, 3, 2, 9, tzinfo=UTC)  # an old event, decided now


@dataclass(frozen=True)
class Decided:
    """A scored row as the scorer writes it with its decision, and its label if any."""

    transaction_id: str
    scored_at: datetime
    outcome: str | None
    fired: list[str] | None
    version: str | None
    fraud: bool | None = None  # None: no label (yet)
    event_time: datetime | None = None  # default: a second before scoring


def _write(settings: Settings, rows: list[Decided]) -> None:
    scored = [
        (
            r.transaction_id,
            r.event_time or r.scored_at - timedelta(seconds=1),
            "card-1",
            "m-1",
            10.0,
            0.1,
            0.5,
            False,
            "rule-stats-test",
            "1",
            "1",
            r.scored_at,
            r.outcome,
            r.fired,
            r.version,
        )
        for r in rows
    ]
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        ensure_days(cur, {utc_day(row[1]) for row in scored})
        execute_values(
            cur,
            """INSERT INTO transactions_with_score (transaction_id, event_time, card_id,
               merchant_id, amount, score, threshold, is_alert, model_name, model_version,
               feature_set_version, scored_at, outcome, fired_rules, rules_version) VALUES %s""",
            scored,
        )
        _label(cur, [(r.transaction_id, r.fraud) for r in rows if r.fraud is not None])


def _label(cur: Any, labels: list[tuple[str, bool]]) -> None:
    if labels:
        execute_values(
            cur,
            """INSERT INTO labels (transaction_id, is_fraud, label_time, source)
               VALUES %s""",
            [(t, fraud, datetime.now(UTC), "chargeback") for t, fraud in labels],
        )


@pytest.fixture
def scratch_api(api_world: World, tmp_path: Path) -> Iterator[tuple[World, str]]:
    """`fraudstream serve` on a database of the test's own (its rows and rule sets are the
    only ones the figures see), with the API world's champion."""
    with scratch_env(api_world.settings) as scratch:
        settings = named(scratch, api_world.settings.mlflow.model_name)
        world = World(**{**api_world.__dict__, "settings": settings})
        # A session time zone half an hour off UTC: the buckets stay UTC hours and days.
        with serve(world, 1, tmp_path, reload_interval=1, PGTZ="Asia/Kolkata") as url:
            yield world, url


def at(start: datetime, minute: int) -> datetime:
    return start + timedelta(minutes=minute)


def _figures(
    hits: int, rate: float | None, labelled: int, frauds: int, precision: float | None
) -> dict[str, Any]:
    return {
        "hits": hits,
        "hit_rate": rate,
        "labelled": labelled,
        "frauds": frauds,
        "precision": precision,
    }


def _per_rule(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r.pop("rule"): r for r in answer["per_rule"]}


def test_hits_hit_rates_and_precisions_per_rule_and_hour(
    scratch_api: tuple[World, str],
) -> None:
    world, url = scratch_api
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first, second = hour - timedelta(hours=3), hour - timedelta(hours=2)
    _write(
        world.settings,
        [
            # The first hour: seven rows scored, six decided with v1.
            Decided("a1", at(first, 1), "decline", ["burst", "blocked"], "v1", fraud=True),
            Decided("a2", at(first, 2), "review", ["burst"], "v1", fraud=False),
            Decided("a3", at(first, 3), "review", ["burst"], "v1"),
            Decided("a4", at(first, 4), "review", None, "v1", fraud=True),  # the model's review
            Decided("a5", at(first, 5), "approve", None, "v1", fraud=True),  # a fraud missed
            Decided("a6", at(first, 6), "approve", None, "v1"),
            Decided("a7", at(first, 59), None, None, None),  # scored before decisions were kept
            # The second hour: v2 went live; an event from March scored (and counted) now.
            Decided("b1", at(second, 0), "review", ["quiet"], "v2"),
            Decided("b2", at(second, 10), "decline", ["burst"], "v2", fraud=True),
            Decided("b3", at(second, 20), "approve", None, "v1"),
            Decided("b4", at(second, 30), "approve", None, "v2", event_time=REPLAYED),
            # Before the window: counts nowhere.
            Decided("old", hour - timedelta(hours=8), "decline", ["burst", "old"], "v0", True),
        ],
    )
    reader = reader_headers(world)
    params = {"hours": 6, "bucket": "hour"}
    answer = httpx.get(f"{url}/rules/stats", params=params, headers=reader, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["bucket"] == "hour"
    assert body["active_version"] is None  # rows were written; no set was activated here
    assert body["rules"] == ["burst", "blocked", "quiet"]  # most hits first, then by name
    assert [datetime.fromisoformat(b["start"]) for b in body["buckets"]] == [first, second]
    one, two = body["buckets"]
    assert (one["scored"], one["rules_versions"]) == (7, ["v1"])
    assert _per_rule(one) == {
        "burst": _figures(3, 3 / 7, 2, 1, 0.5),
        "blocked": _figures(1, 1 / 7, 1, 1, 1.0),
        "quiet": _figures(0, 0.0, 0, 0, None),
    }
    assert one["decision"] == _figures(4, 4 / 7, 3, 2, 2 / 3)
    assert (two["scored"], two["rules_versions"]) == (4, ["v1", "v2"])
    assert _per_rule(two) == {
        "burst": _figures(1, 0.25, 1, 1, 1.0),
        "blocked": _figures(0, 0.0, 0, 0, None),
        "quiet": _figures(1, 0.25, 0, 0, None),  # hits, none labelled yet: no precision
    }
    assert two["decision"] == _figures(2, 0.5, 1, 1, 1.0)
    total = body["total"]
    assert (total["scored"], total["rules_versions"]) == (11, ["v1", "v2"])
    assert _per_rule(total) == {
        "burst": _figures(4, 4 / 11, 3, 2, 2 / 3),
        "blocked": _figures(1, 1 / 11, 1, 1, 1.0),
        "quiet": _figures(1, 1 / 11, 0, 0, None),
    }
    assert total["decision"] == _figures(6, 6 / 11, 4, 3, 0.75)

    # Labels count as they arrive: quiet's hit is labelled genuine, the next answer has it.
    with connect(world.settings.postgres) as conn, conn.cursor() as cur:
        _label(cur, [("b1", False)])
    later = httpx.get(f"{url}/rules/stats", params=params, headers=reader, timeout=30).json()
    assert _per_rule(later["buckets"][1])["quiet"] == _figures(1, 0.25, 1, 0, 0.0)
    assert _per_rule(later["total"])["quiet"] == _figures(1, 1 / 11, 1, 0, 0.0)
    assert later["total"]["decision"] == _figures(6, 6 / 11, 5, 3, 0.6)

    # By day: the two hours fall in one day (or two, when the test runs just after midnight).
    daily = httpx.get(
        f"{url}/rules/stats", params={"hours": 48, "bucket": "day"}, headers=reader, timeout=30
    ).json()
    assert sum(b["scored"] for b in daily["buckets"]) == 12  # the old row is in 48 hours
    assert _per_rule(daily["total"])["old"] == _figures(1, 1 / 12, 1, 1, 1.0)
    days = [datetime.fromisoformat(b["start"]).astimezone(UTC) for b in daily["buckets"]]
    assert {d.time() for d in days} == {time(0)}, days


def test_the_window_and_the_bucket_are_checked(api_world: World, tmp_path: Path) -> None:
    reader = reader_headers(api_world)
    with serve(api_world, 1, tmp_path) as url:

        def get(**params: Any) -> httpx.Response:
            return httpx.get(f"{url}/rules/stats", params=params, headers=reader, timeout=30)

        for params, field, words in (
            ({"hours": 0}, "hours", "greater than 0"),
            ({"hours": "a day"}, "hours", "valid number"),
            ({"hours": 24 * 90 + 1, "bucket": "day"}, "hours", "less than or equal to 2160"),
            ({"bucket": "minute"}, "bucket", "'hour' or 'day'"),
            ({"hours": 24 * 7 + 1}, "hours", "bucket=hour covers at most 168 hours"),
        ):
            refused = get(**params)
            assert refused.status_code == 422, (params, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            problem = refused.json()
            assert problem["type"].endswith("/invalid-request")
            assert [e["field"] for e in problem["errors"]] == [field], problem
            assert words in problem["detail"], problem
        assert "ask bucket=day for 169 hours" in get(hours=169).json()["detail"]
        assert get(hours=24 * 7).status_code == 200
        assert get(hours=24 * 90, bucket="day").status_code == 200
        assert httpx.get(f"{url}/rules/stats", timeout=30).status_code == 401


def test_the_dashboard_panel_states_then_draws_a_line_per_rule(
    scratch_api: tuple[World, str], tmp_path: Path
) -> None:
    if not CHROMIUM.is_file():
        pytest.fail("Chromium is missing: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import expect, sync_playwright

    world, url = scratch_api
    token = world.settings.api.read_token
    assert token is not None
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{url}/dashboard/#token={token.get_secret_value()}")
        state = page.locator("#rule-stats-state")
        expect(state).to_have_text("No rule set active: the model decides alone.")
        expect(page.locator("#rule-stats-charts")).to_be_hidden()

        put = {"rule_set": blocking_rule_set("d1", ["card-x"]), "activated_by": "ana"}
        done = httpx.put(f"{url}/rules", json=put, headers=writer_headers(world), timeout=30)
        assert done.status_code == 200, done.text
        # The panel refreshes with the others (every 15 s).
        expect(state).to_have_text(
            "No rule fired in the window (rule set d1 active).", timeout=30_000
        )
        expect(page.locator("#rule-stats-charts")).to_be_hidden()

        _write(
            world.settings,
            [
                Decided("d-1", hour - timedelta(minutes=50), "decline", ["blocked_card"], "d1"),
                Decided("d-2", hour - timedelta(minutes=40), "review", ["any_amount"], "d1", True),
                Decided("d-3", hour - timedelta(minutes=30), "review", ["any_amount"], "d1"),
                Decided("d-4", hour - timedelta(minutes=20), "approve", None, "d1", False),
            ],
        )
        expect(state).to_have_text("Rule set d1 active; live in the window: d1.", timeout=30_000)
        charts = page.locator("#rule-stats-charts")
        expect(charts).to_be_visible()
        for chart, points in (("#rule-hit-rate", 2), ("#rule-precision", 1)):
            expect(page.locator(f"{chart} polyline")).to_have_count(2)
            # One bucket: a point per rule with a value (blocked_card has no precision).
            expect(page.locator(f"{chart} circle")).to_have_count(points)
            expect(page.locator(f"{chart} text", has_text="any_amount")).to_have_count(1)
            expect(page.locator(f"{chart} text", has_text="blocked_card")).to_have_count(1)
        rows = page.locator("#rule-totals tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0).locator("td")).to_have_text(
            ["any_amount", "2", "50.0%", "1", "1", "100.0%"]
        )
        expect(rows.nth(1).locator("td")).to_have_text(
            ["blocked_card", "1", "25.0%", "0", "0", "–"]
        )
        expect(rows.nth(2).locator("td")).to_have_text(
            ["decision (review or decline)", "3", "75.0%", "1", "1", "100.0%"]
        )
        shot = tmp_path / "rules-panel.png"
        page.locator("#rule-stats-panel").screenshot(path=str(shot))
        print(f"\nscreenshot: {shot}")
        browser.close()
