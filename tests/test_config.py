"""Grading configs: which checks count and how much; bad input is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from poolcheck.app.cli import main
from poolcheck.app.config import Grading, load_config, parse_config
from poolcheck.errors import ConfigError
from poolcheck.run.checks import all_checks, default_checks

ROOT = Path(__file__).resolve().parent.parent
LEVELS = sorted((ROOT / "examples" / "grading").glob("level*.toml"))


def test_patterns_weights_and_the_last_match_wins() -> None:
    config = parse_config({"weights": {"stress/*": 2, "stress/timeout": 0,
                                       "sequential/bound": 1.5},
                           "hidden": {"checks": ["stress/w*"]}})
    assert config.weight("stress/bound") == 2 and config.weight("stress/timeout") == 0
    assert config.weight("sequential/no-leak") == 0 and config.weight("sequential/bound") == 1.5
    assert "stress/timeout" not in config.checks and "sequential/bound" in config.checks
    assert config.hidden == {"stress/wakeup"}


def test_the_default_counts_every_default_check_once() -> None:
    assert Grading().checks == default_checks()
    assert "controlled/linearizable" not in default_checks()  # opt-in: --check or a config
    assert "controlled/linearizable" in {c.name for c in all_checks()}


@pytest.mark.parametrize("path", LEVELS, ids=[p.stem for p in LEVELS])
def test_the_shipped_levels_load_and_grow(path: Path) -> None:
    assert load_config(path).checks


def test_levels_add_checks() -> None:
    one, two, three, four = (set(load_config(p).checks) for p in LEVELS)
    assert one < two < three < four and three == set(default_checks())
    assert four - three == {c.name for c in all_checks() if c.name.startswith("controlled/")}


@pytest.mark.parametrize(("text", "expected"), [
    ('[weights]\n"sequential/bond" = 1\n', "'sequential/bond' matches no check"),
    ('[weights]\n"stress/*" = -1\n', "is negative"),
    ('[weights]\n"stress/*" = "two"\n', "must be a number"),
    ('[weights]\n"stress/*" = true\n', "must be a number"),
    ('[weights]\n"stress/*" = nan\n', "must be a number"),
    ('[weights]\n"stress/*" = 0\n', "no check would run"),
    ("[hidden]\nchecks = []\n", "[weights] is missing"),
    ('[weights]\n"stress/*" = 1\n[grades]\n', "unknown section(s) grades"),
    ('[weights]\n"stress/*" = 1\n[hidden]\nchecks = "stress/*"\n', "must be a list"),
    ('[weights]\n"stress/*" = 1\n[hidden]\nchecks = ["nope"]\n', "'nope' matches no check"),
    ("[weights\n", "not valid TOML"),
])
def test_bad_configs_are_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str) -> None:
    path = tmp_path / "grading.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as info:
        load_config(path)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_weights_and_hidden_checks_reach_gradescope_and_prairielearn(tmp_path: Path) -> None:
    config = tmp_path / "grading.toml"
    config.write_text('[weights]\n"sequential/bound" = 3\n"sequential/no-leak" = 1\n'
                      '[hidden]\nchecks = ["sequential/no-leak"]\n')
    gs, pl = tmp_path / "gs.json", tmp_path / "pl.json"
    target = "tests.sequential_bugs:CloseLeavesIdleOpen"  # fails no-leak only
    assert main(["check", target, "--seed", "3", "--config", str(config),
                 "--gradescope", str(gs), "--prairielearn", str(pl)]) == 1
    grades = json.loads(gs.read_text())
    assert grades["score"] == 3.0
    assert {t["name"]: (t["score"], t["max_score"], t["visibility"])
            for t in grades["tests"]} == {
        "sequential/bound": (3.0, 3.0, "visible"),
        "sequential/no-leak": (0.0, 1.0, "after_due_date")}
    prairie = json.loads(pl.read_text())
    assert prairie["gradable"] is True and prairie["score"] == 0.75
    hidden = next(t for t in prairie["tests"] if t["name"] == "sequential/no-leak")
    assert hidden["points"] == 0.0 and hidden["max_points"] == 1.0 and hidden["output"] == ""


def test_an_unloadable_target_is_not_gradable_for_prairielearn(tmp_path: Path) -> None:
    pl = tmp_path / "pl.json"
    assert main(["check", str(tmp_path / "missing.py"), "--prairielearn", str(pl)]) == 2
    doc = json.loads(pl.read_text())
    assert doc["gradable"] is False and "no such file" in doc["message"]
