"""The Prometheus alert rules shipped in docs/: valid, firing when they should, and about metrics that exist."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from outbox.metrics import CIRCUIT_STATES, exposition

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "prometheus" / "outbox-alerts.yml"
RULE_TESTS = Path(__file__).with_name("outbox-alerts.test.yml")
SCRAPE = ROOT / "docs" / "prometheus" / "scrape.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (Debian's package; .ci/run installs it)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_rules_are_valid_prometheus_rules():
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_each_alert_fires_when_it_should_and_only_then():
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_the_rules_speak_only_of_metrics_and_states_that_metrics_exposes():
    # given every metric family /metrics answers with
    exposed = {family.name for family in text_string_to_metric_families(exposition().decode())}
    # when the rules' expressions are read
    expressions = [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    used = {name for expr in expressions for name in re.findall(r"\boutbox_[a-z_]+\b", expr)}
    states = {s for expr in expressions for m in re.findall(r'state=~?"([^"]+)"', expr) for s in m.split("|")}
    # then
    assert used
    assert used <= exposed, used - exposed
    assert states
    assert states <= set(CIRCUIT_STATES)


def test_the_scrape_configuration_is_a_valid_prometheus_configuration(tmp_path):
    # given it beside the rules and a token file, as it would be installed
    for source in (SCRAPE, RULES):
        shutil.copy(source, tmp_path / source.name)
    (tmp_path / "shop-metrics-token").write_text("a-scrape-token\n")
    # then
    result = _promtool("check", "config", str(tmp_path / SCRAPE.name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
