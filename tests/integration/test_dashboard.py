"""The dashboard in headless Chromium (Debian's) against the API on the running platform.

The page loads, a live alert produced to the real ``fraud_alerts`` topic appears,
a transaction is found by id, a verdict click is published as an analyst label, which label
ingestion writes to Postgres once.
Screenshots are kept under the test's tmp path (printed) as artifacts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from confluent_kafka import Producer

from fraudstream.adapters.kafka import producer_config
from fraudstream.adapters.postgres import connect
from fraudstream.api.app import create_app
from fraudstream.topics import FRAUD_ALERTS
from tests.integration.api_support import World
from tests.integration.label_support import ingest_since, topic_end

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def server(api_world: World) -> Iterator[str]:
    settings = api_world.settings
    config = uvicorn.Config(
        create_app(settings), host=settings.api.host, port=settings.api.port, log_level="warning"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running.started, "the API did not start"
    yield settings.api.url
    running.should_exit = True
    thread.join(timeout=10)


def test_live_alert_search_and_verdict_in_a_real_browser(
    server: str,
    api_world: World,
    tmp_path: Path,
) -> None:
    if not CHROMIUM.is_file():
        pytest.fail("Chromium is missing: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    token = api_world.settings.api.token
    assert token is not None
    alert_id = api_world.alert_ids[2]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/dashboard/#token={token.get_secret_value()}")
        expect(page.locator("#live-badge")).to_have_text("live: connected", timeout=20_000)
        expect(page.locator("#model-badge")).to_have_text(f"champion v{api_world.model_version}")
        page.screenshot(path=str(shots / "1-loaded.png"), full_page=True)

        _produce_alert(api_world, alert_id)
        row = page.locator(f'#alerts li.new[data-id="{alert_id}"]')
        expect(row).to_be_visible(timeout=20_000)
        page.screenshot(path=str(shots / "2-live-alert.png"), full_page=True)

        page.fill("#search-id", alert_id)
        page.click("#search button")
        expect(page.locator("#txn-id")).to_have_text(alert_id)
        expect(page.locator("#txn-decision")).to_have_text("alert")

        labels_end = topic_end(api_world.settings)
        row.get_by_role("button", name="Confirm fraud").click()
        expect(row.locator(".status")).to_have_text("confirmed", timeout=10_000)
        page.screenshot(path=str(shots / "3-verdict.png"), full_page=True)
        browser.close()
    assert ingest_since(api_world.settings, labels_end) == 1
    with connect(api_world.settings.postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT is_fraud, source FROM labels WHERE transaction_id = %s", (alert_id,))
        assert cur.fetchall() == [(True, "analyst")]
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-loaded.png",
        "2-live-alert.png",
        "3-verdict.png",
    ]


def test_the_analysts_read_only_token_shows_everything_and_records_no_verdict(
    server: str,
    api_world: World,
) -> None:
    if not CHROMIUM.is_file():
        pytest.fail("Chromium is missing: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import expect, sync_playwright

    token = api_world.settings.api.read_token
    assert token is not None
    alert_id = api_world.alert_ids[0]
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{server}/dashboard/#token={token.get_secret_value()}")
        expect(page.locator("#live-badge")).to_have_text("live: connected", timeout=20_000)
        expect(page.locator("#model-badge")).to_have_text(f"champion v{api_world.model_version}")
        _produce_alert(api_world, alert_id)
        row = page.locator(f'#alerts li.new[data-id="{alert_id}"]')
        expect(row).to_be_visible(timeout=20_000)
        row.get_by_role("button", name="Confirm fraud").click()
        page.wait_for_timeout(2_000)
        expect(row.locator(".status")).to_have_text("open")
        browser.close()
    assert len(dialogs) == 1
    assert "Verdict not recorded" in dialogs[0]
    assert "writer's token" in dialogs[0]
    with connect(api_world.settings.postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM labels WHERE transaction_id = %s", (alert_id,))
        assert cur.fetchone() == (0,)


def test_without_a_token_the_dashboard_says_how_to_get_one(server: str) -> None:
    if not CHROMIUM.is_file():
        pytest.fail("Chromium is missing: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page()
        page.goto(f"{server}/dashboard/")
        expect(page.locator("#token-hint")).to_be_visible()
        expect(page.locator("#live-badge")).to_have_text("live: connecting")
        browser.close()


def _produce_alert(world: World, transaction_id: str) -> None:
    """The alert record the scorer publishes, for one of the scored alerts."""
    with connect(world.settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT card_id, merchant_id, amount::float8, score, threshold, reason_detail "
            "FROM fraud_alerts WHERE transaction_id = %s",
            (transaction_id,),
        )
        card, merchant, amount, score, threshold, reasons = cur.fetchone()
    record = {
        "transaction_id": transaction_id,
        "card_id": card,
        "merchant_id": merchant,
        "amount": amount,
        "score": score,
        "threshold": threshold,
        "decision": "alert",
        "model_version": world.model_version,
        "reason_codes": reasons,
    }
    producer = Producer(producer_config(world.settings.kafka))
    producer.produce(FRAUD_ALERTS.name, key=transaction_id.encode(), value=json.dumps(record))
    assert producer.flush(10) == 0
