"""Declared settings: defaults that pass their own declarations, --set coercion, the listing, and every search
space drawing only declared settings inside their declared ranges and choices."""
import importlib

import optuna
import pytest

import search_spaces
from mtlsearch.cli import main
from mtlsearch.errors import ConfigError
from mtlsearch.settings import check_declared, declared_settings, split_settings
from mtlsearch.strategies import available, get_strategy
from mtlsearch.strategies.setting import Setting, dataclass_settings
from mtlsearch.training import TrainConfig

STRATEGIES = list(available())
DRAWS = 300  # per space: enough for every categorical branch of every space to come up many times
# the strategies each space draws (tests/test_search.py searches the two that mix strategies)
SPACE_STRATEGIES = {"task_routing": {"task_routing"}, "sfg": {"sfg"}, "selective_sharing": {"selective_sharing"},
                    "task_affinity": {"task_affinity"}, "baselines": {"single_task", "hard_sharing", "cross_stitch"},
                    "all": {"task_routing", "sfg", "selective_sharing", "task_affinity"}}


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_default_is_valid_and_of_the_declared_type(name):
    cls = get_strategy(name)
    settings = [*dataclass_settings(TrainConfig), *cls.settings]
    assert len({s.name for s in settings}) == len(settings), "a strategy setting shadows another setting"
    for s in settings:
        s.check(s.default)
        assert s.default is None or type(s.default) is s.type, s.name
    assert cls.defaults() == {s.name: s.default for s in cls.settings}


@pytest.mark.parametrize("space_name", search_spaces.NAMES)
def test_every_space_draws_declared_settings_inside_their_declared_ranges(space_name):
    space = importlib.import_module(f"search_spaces.{space_name}").space
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = set()
    for _ in range(DRAWS):
        trial = study.ask()
        settings = dict(space(trial))
        strategy = settings.pop("strategy")
        check_declared(settings, get_strategy(strategy))
        drawn.add(strategy)
        study.tell(trial, 0.0)
    assert drawn == SPACE_STRATEGIES[space_name]


def test_a_draw_outside_the_declarations_is_refused():
    task_routing = get_strategy("task_routing")
    with pytest.raises(ConfigError, match=r"sigma\[1\] must be in \[0.0, 1.0\], got 1.5"):
        check_declared({"sigma": [0.5, 1.5]}, task_routing)
    with pytest.raises(ConfigError, match="unknown setting.*tau0 for strategy task_routing; valid: backbone"):
        check_declared({"tau0": 1.0}, task_routing)
    with pytest.raises(ConfigError, match="epochs must be an integer, got 2.5"):
        check_declared({"epochs": 2.5}, task_routing)


def test_set_values_are_coerced_only_where_lossless():
    train, config = split_settings({"lr": 1, "epochs": 3, "self_weight": 1}, get_strategy("cross_stitch"))
    assert (train.lr, type(train.lr), train.epochs, type(train.epochs)) == (1.0, float, 3, int)
    assert config == {"self_weight": 1.0} and type(config["self_weight"]) is float
    _, config = split_settings({"sigma": [0, 1], "route_linear": True}, get_strategy("task_routing"))
    assert config == {"sigma": [0, 1], "route_linear": True} and type(config["sigma"][0]) is int
    assert Setting("flag", bool, False, "a flag").coerce(1) == 1


def test_declared_checks_name_the_setting_and_what_is_valid():
    cases = [(Setting("flag", bool, False, "-"), "yes", "flag must be true or false, got 'yes'"),
             (Setting("mode", str, "a", "-", choices=("a", "b")), "c", "mode must be one of a, b, got 'c'"),
             (Setting("rate", float, 1.0, "-", low=0.0, low_open=True), 0.0, r"rate must be in \(0.0, inf\], got 0.0"),
             (Setting("count", int, 1, "-", low=1), 1.0, "count must be an integer, got 1.0"),
             (Setting("count", int, 1, "-", low=1), True, "count must be an integer, got True"),
             (Setting("share", float, 0.5, "-", low=0.0, high=1.0, per_layer="layer"), [],
              r"non-empty list of them \(one per layer\), got \[\]")]
    for setting, value, message in cases:
        with pytest.raises(ConfigError, match=message):
            setting.check(value)


def test_listing_shows_every_setting_with_its_default_and_what_it_accepts(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in STRATEGIES:
        cls = get_strategy(name)
        assert f"{name:<18} {cls.description}\n" in out
        for s in cls.settings:
            assert s.describe() in out and s.help in out
    assert "self_weight=0.9 " in out and "route_linear=false " in out and "backbone=none " in out
    assert all(f"{s.name}=" in out for s in declared_settings(get_strategy("sfg")).values())
