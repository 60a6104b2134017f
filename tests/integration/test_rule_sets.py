"""Rule sets as versioned data on the real PostgreSQL: checked, stored, activated, reloaded,
and through `fraudstream rules activate | active`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudstream.adapters.postgres import connect, migrate, scratch_database
from fraudstream.rules.ruleset import RuleSetError
from fraudstream.scoring.reload import rule_set_holder
from fraudstream.services import rules
from fraudstream.settings import PostgresSettings, Settings
from tests.integration.conftest import CLI, run_cli, scratch_env

pytestmark = pytest.mark.services("postgres")


@pytest.fixture
def database(settings: Settings) -> Iterator[PostgresSettings]:
    with scratch_database(settings.postgres, "test") as pg:
        migrate(pg)
        yield pg


def _set(version: str, condition: str = "amount > 1000") -> dict[str, Any]:
    return {
        "version": version,
        "lists": {"blocked": ["card-bad"]},
        "rules": [
            {"name": "big", "condition": condition, "outcome": "review"},
            {"name": "block", "condition": "card_id in blocked", "outcome": "decline"},
        ],
    }


def _rows(pg: PostgresSettings, table: str) -> int:
    with connect(pg) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        (count,) = cur.fetchone() or (0,)
    return int(count)


def test_a_checked_set_is_stored_activated_and_kept_in_the_history(
    database: PostgresSettings,
) -> None:
    assert rules.active(database) is None
    assert rules.history(database) == []
    first, activation = rules.activate(database, _set("v1"), "ana", "first rules")
    assert (first.version, activation.previous_version, activation.activated_by) == (
        "v1",
        None,
        "ana",
    )
    rules.activate(database, _set("v2", "amount > 2000"), "bob")
    found = rules.active(database)
    assert found is not None
    assert found.rule_set.version == "v2"
    assert found.document == _set("v2", "amount > 2000")
    assert [r.condition for r in found.rule_set.rules if r.name == "big"] == ["amount > 2000"]
    # A rollback is an activation like any other; the stored version is reused, not copied.
    rules.activate(database, _set("v1"), "ana", "roll back")
    history = rules.history(database)
    assert [(h.version, h.previous_version, h.activated_by, h.comment) for h in history] == [
        ("v1", "v2", "ana", "roll back"),
        ("v2", "v1", "bob", ""),
        ("v1", None, "ana", "first rules"),
    ]
    assert history[0].activated_at >= history[1].activated_at >= history[2].activated_at
    assert _rows(database, "rule_sets") == 2


def test_an_invalid_set_is_refused_with_its_reason_and_the_active_one_stays(
    database: PostgresSettings,
) -> None:
    rules.activate(database, _set("v1"), "ana")
    with pytest.raises(RuleSetError, match="rule 'big': unknown name 'amount_x'") as refused:
        rules.activate(database, _set("v2", "amount_x > 3"), "bob")
    assert refused.value.rule == "big"
    with pytest.raises(RuleSetError, match="version is required"):
        rules.activate(database, {"rules": _set("v3")["rules"]}, "bob")
    found = rules.active(database)
    assert found is not None
    assert found.rule_set.version == "v1"
    assert [h.version for h in rules.history(database)] == ["v1"]
    assert _rows(database, "rule_sets") == 1


def test_a_used_version_with_other_rules_is_refused(database: PostgresSettings) -> None:
    rules.activate(database, _set("v1"), "ana")
    with pytest.raises(rules.VersionTakenError, match="give the changed set a new version"):
        rules.activate(database, _set("v1", "amount > 5"), "bob")
    # The same rules under the same version (a retried request) activate again.
    rules.activate(database, _set("v1"), "bob")
    assert [h.activated_by for h in rules.history(database)] == ["bob", "ana"]
    found = rules.active(database)
    assert found is not None
    assert found.document == _set("v1")


def test_the_holder_picks_up_a_new_activation_and_keeps_serving_when_down(
    database: PostgresSettings,
) -> None:
    holder = rule_set_holder(database, interval_s=0.0)
    assert not holder.refresh()
    assert holder.current is None
    assert holder.detail.startswith("the rule set has no @active yet: activate one")
    rules.activate(database, _set("v1"), "ana")
    assert holder.refresh()
    assert holder.current is not None
    assert holder.current.version == "v1"
    assert not holder.refresh(), "an unchanged version is not loaded again"
    rules.activate(database, _set("v2", "amount > 2000"), "ana")
    assert holder.refresh()
    assert holder.current.version == "v2"
    assert holder.detail == "serving version v2 (@active)"
    gone = database.model_copy(update={"port": 1})
    down = rule_set_holder(gone, interval_s=0.0)
    down.current = holder.current
    assert not down.refresh()
    assert down.current is holder.current
    assert down.counts.failed == 1
    assert down.detail.startswith("cannot read @active from PostgreSQL at ")


def test_the_cli_activates_a_file_and_shows_the_active_set(
    settings: Settings, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(_set("c1")))
    bad.write_text(yaml.safe_dump(_set("c2", "amount_x > 3")))
    with scratch_env(settings) as scratch:
        shown = json.loads(run_cli("rules", "active", "--json").stdout.strip().splitlines()[-1])
        assert shown == {"command": "rules active", "version": None, "history": []}
        done = run_cli("rules", "activate", str(good), "--by", "ana", "--comment", "first")
        assert "rule set c1 is active (2 rules; was none)" in done.stdout
        refused = subprocess.run(
            [*CLI, "rules", "activate", str(bad), "--by", "bob"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert refused.returncode == 1
        said = " ".join(refused.stderr.split())
        assert said.startswith(f"error (rules): {bad}: rule 'big': unknown name 'amount_x'")
        found = rules.active(scratch.postgres)
        assert found is not None
        assert found.rule_set.version == "c1"
        shown = json.loads(run_cli("rules", "active", "--json").stdout.strip().splitlines()[-1])
        assert shown["version"] == "c1"
        assert [(h["version"], h["activated_by"], h["comment"]) for h in shown["history"]] == [
            ("c1", "ana", "first")
        ]
