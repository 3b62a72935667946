"""The paca-otel command: --version, config (secrets masked), rules."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from paca_otel import __version__
from paca_otel.cli import main
from tests._wait import wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_config_prints_effective_settings_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """config shows env-derived values and masks header values and passwords."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer topsecret")
    monkeypatch.setenv("PACA_OTEL_SMTP_PASSWORD", "hunter2")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["service_name"] == "billing"
    assert data["otlp_headers"] == {"authorization": "***"}
    assert "topsecret" not in out
    assert "hunter2" not in out
    assert data["effective_exporters"]["metrics"] == ["prometheus"]


def test_config_masks_credentials_in_urls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`paca-otel config` never prints a password given as URL userinfo."""
    monkeypatch.setenv("PACA_OTEL_ALERTMANAGER_URL", "http://admin:hunter2@am.example:9093")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:s3cr3t@collector:4317")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "s3cr3t" not in out
    data = json.loads(out)
    assert data["alertmanager_url"].endswith("am.example:9093")
    assert "collector:4317" in data["otlp_endpoint"]


def test_config_error_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad environment value exits 2 with a message naming the setting."""
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "zipkin")
    assert main(["config"]) == 2
    assert "metrics_exporter" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    """The paca-otel entry point runs as a subprocess."""
    result = subprocess.run(
        [sys.executable, "-m", "paca_otel.cli", "--version"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert __version__ in result.stdout


def test_rules_check_accepts_the_example_and_names_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """rules check: 0 for a valid file; 1 with file, rule and column for a broken one."""
    assert main(["rules", "check", str(ROOT / "examples" / "rules.yaml")]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: cpu_usage >\n"
    )
    assert main(["rules", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "Broken" in err
    assert "column" in err


def test_rules_test_runs_the_example_unit_tests(capsys: pytest.CaptureFixture[str]) -> None:
    """rules test: the shipped rule unit tests pass, like promtool test rules."""
    assert main(["rules", "test", str(ROOT / "examples" / "rules_test.yaml")]) == 0


def test_rules_export_writes_prometheus_rules(capsys: pytest.CaptureFixture[str]) -> None:
    """rules export --format prometheus prints a Prometheus rule file."""
    import yaml

    assert main(["rules", "export", str(ROOT / "examples" / "rules.yaml")]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["groups"]
    assert all("alert" in rule for group in document["groups"] for rule in group["rules"])


def test_rules_check_channels_against_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """rules check: email is unconfigured until SMTP is set; --channel declares a custom one."""
    monkeypatch.delenv("PACA_OTEL_SMTP_HOST", raising=False)
    path = tmp_path / "rules.yaml"
    path.write_text(
        "groups:\n- name: g\n  rules:\n  - {alert: A, expr: x > 1, channels: [email, pager]}\n"
    )
    assert main(["rules", "check", str(path)]) == 1
    assert "unknown channel 'pager'" in capsys.readouterr().err
    assert main(["rules", "check", str(path), "--channel", "pager"]) == 0
    assert "unconfigured channel 'email'" in capsys.readouterr().out
    monkeypatch.setenv("PACA_OTEL_SMTP_HOST", "smtp.example.com")
    assert main(["rules", "check", str(path), "--channel", "pager"]) == 0
    assert "unconfigured" not in capsys.readouterr().out


def _demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "paca_otel.cli", "demo", "--no-traffic", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_demo_on_a_busy_port_fails_fast_and_says_so() -> None:
    """--port in use: exit 2 with the address named, and no banner claiming it runs."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _demo("--port", str(port))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"127.0.0.1:{port}" in err
    assert "in use" in err
    assert "demo on" not in out


def test_demo_port_zero_prints_the_real_port() -> None:
    """--port 0 picks a free port and the banner shows that port, which then answers."""
    proc = _demo("--port", "0")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("paca-otel demo on http://127.0.0.1:"), first
        port = int(first.rsplit(":", 1)[1])
        assert port != 0

        def health() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/monitoring/health", timeout=2)
            except httpx.TransportError:
                return None

        response = wait_for(health, "the demo to answer", timeout=30, interval=0.2)
        assert response.status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
