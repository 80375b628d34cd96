"""The one number format (sop_core/formatting.py): compact, signed, units, locales, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from sop_core import formatting as fmt
from sop_core.config import Settings
from tests.readback import read_back

NBSP = "\xa0"
EN = fmt.NumberStyle()
EN_UNITS = fmt.NumberStyle(units={"revenue": "EUR", "volume": "units"})
DE = fmt.NumberStyle(locale="de_DE", units={"revenue": "EUR", "volume": "units"})


@pytest.mark.parametrize(("value", "text"), [
    (-8938.2, "-8.94K"), (-464296.4, "-464K"), (3_240_000, "3.24M"), (3_200_000, "3.20M"),
    (23_700, "23.7K"), (950, "950"), (999.6, "1.00K"), (999_600, "1.00M"), (12.4, "12"),
    (0.4, "0"), (-0.4, "0"), (2.5e9, "2.50B"), (None, "n/a"), (float("nan"), "n/a"),
])
def test_compact_amounts_have_three_significant_digits(value, text):
    with fmt.use(EN):
        assert fmt.amount(value) == text


def test_gaps_and_changes_carry_a_sign_and_zero_never_does():
    with fmt.use(EN):
        assert fmt.amount(8938, signed=True) == "+8.94K"
        assert fmt.amount(-8938, signed=True) == "-8.94K"
        assert fmt.amount(0.2, signed=True) == "0"
        assert fmt.full_amount(1234.6, signed=True) == "+1,235"
        assert fmt.percent(2) == "+2.0%"
        assert fmt.percent(-4.34) == "-4.3%"
        assert fmt.percent(0.04) == "0.0%"
        assert fmt.percent(12.5, signed=False) == "12.5%"


def test_units_per_metric_placed_as_the_locale_places_them():
    with fmt.use(EN_UNITS):
        assert fmt.amount(-464296, metric="revenue") == "-€464K"
        assert fmt.amount(-464296, metric="Revenue") == "-€464K"  # metric names any case
        assert fmt.amount(1234.4, metric="volume") == f"1.23K{NBSP}units"
        assert fmt.full_amount(1234.4, metric="volume") == f"1,234{NBSP}units"  # no cents
        assert fmt.amount(-464296, metric="margin") == "-464K"  # no unit configured
    with fmt.use(DE):
        assert fmt.full_amount(-464296.4, metric="revenue") == f"-464.296{NBSP}€"
        assert fmt.amount(-464296.4, metric="revenue") == f"-464{NBSP}Tsd.{NBSP}€"
        assert fmt.amount(3_240_000, signed=True, metric="revenue") == f"+3,24{NBSP}Mio.{NBSP}€"
        assert fmt.amount(-8938, metric="volume") == f"-8,94{NBSP}Tsd.{NBSP}units"
        assert fmt.percent(-12.46) == f"-12,5{NBSP}%"
        assert fmt.share(0.423) == f"42{NBSP}%"
        assert fmt.number(12000) == "12.000"


def test_settings_read_locale_and_units_and_refuse_nonsense(monkeypatch):
    monkeypatch.setenv("SOPGAP_LOCALE", "de-DE")
    monkeypatch.setenv("SOPGAP_UNITS", "Revenue=EUR, volume=units")
    settings = Settings()
    assert settings.locale == "de_DE"
    assert settings.units == {"revenue": "EUR", "volume": "units"}
    monkeypatch.setenv("SOPGAP_LOCALE", "xx_QQ")
    with pytest.raises(ValidationError, match="unknown locale 'xx_QQ'"):
        Settings()
    monkeypatch.setenv("SOPGAP_LOCALE", "en_US")
    monkeypatch.setenv("SOPGAP_UNITS", "revenue")
    with pytest.raises(ValidationError, match="metric=unit"):
        Settings()
    monkeypatch.setenv("SOPGAP_UNITS", "revenue=<!channel>")
    with pytest.raises(ValidationError, match="a currency code or a short word"):
        Settings()
    monkeypatch.setenv("SOPGAP_UNITS", "volume=hl beer, weight=t")
    assert Settings().units == {"volume": "hl beer", "weight": "t"}


@pytest.mark.parametrize("ticks", [
    [95_000, 97_500, 100_000, 102_500, 105_000],
    [0, 2_500_000, 5_000_000, 7_500_000],
    [-20_000, -10_000, 0, 10_000],
    [3_100_000, 3_150_000, 3_200_000],
    [0, 200, 400, 600],
    [0, 0.5, 1.0, 1.5],
])
@pytest.mark.parametrize("number_style", [EN, DE])
def test_tick_labels_say_exactly_the_value_they_sit_at(ticks, number_style):
    with fmt.use(number_style):
        labels = fmt.tick_labels(ticks)
    assert len(set(labels)) == len(labels)
    for tick, label in zip(ticks, labels, strict=True):
        assert read_back(label, number_style.locale) == pytest.approx(tick, abs=1e-9)


def test_json_amounts_are_cents_without_float_noise():
    assert fmt.json_amount(21873047.020000003) == 21873047.02
    assert json.dumps(fmt.json_amount(21873047.020000003)) == "21873047.02"
    assert fmt.json_amount(-0.001) == 0.0 and str(fmt.json_amount(-0.001)) == "0.0"
    assert fmt.json_amount(None) is None and fmt.json_amount(float("inf")) is None
    assert fmt.json_share(0.1234567) == 12.3457  # shares in percent, as gap_pct
    assert fmt.json_percent(-12.345678) == -12.3457
    assert json.dumps(fmt.json_percent(100 * 0.1 + 100 * 0.2)) == "30.0"


# Number formatting written by hand somewhere other than the formatting module.
ROOT = Path(__file__).resolve().parents[2]


def test_no_ad_hoc_number_formatting_outside_the_formatting_module():
    offenders = []
    for folder in ("bot", "sop_core"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "sop_core" / "formatting.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if fmt.AD_HOC_FORMAT.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("line", ['f"{x:,.0f}"', 'f"{rows:,}"', 'f"{v:+.1f}%"',
                                  '"{:.2f}".format(x)', '"%.1f" % x', 'f"{x / 1e3:.1f}K"',
                                  'f"{threshold:g}"', 'f"{n:,d}"'])
def test_the_ad_hoc_pattern_catches_the_usual_forms(line):
    assert fmt.AD_HOC_FORMAT.search(line)


@pytest.mark.parametrize("line", ['f"{year:04d}-{month:02d}"', 'f"{name!r}"',
                                  'f"{loaded:%b}"'])
def test_the_ad_hoc_pattern_leaves_dates_and_names_alone(line):
    assert not fmt.AD_HOC_FORMAT.search(line)


def test_the_cli_names_a_bad_number_setting_without_a_traceback(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli import app
    from sop_core.config import get_settings

    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(app, ["gaps"], env={"SOPGAP_LOCALE": "xx_QQ",
                                                      "DATABASE_URL": f"sqlite:///{tmp_path}/x"})
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 2
    assert "SOPGAP_LOCALE: unknown locale 'xx_QQ'" in " ".join(done.output.split())
    assert "Traceback" not in done.output
