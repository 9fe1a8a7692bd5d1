"""Objective parameters: validation messages, arm expansion, the listing the CLI prints."""

from pathlib import Path

import pytest
import yaml

from birdie_ssm.config import ObjectiveEntry
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives import describe_objectives, expand_arms
from birdie_ssm.text.tokenizer import ByteTokenizer

SPECIALS = ByteTokenizer().specials
BUILTINS = {
    "next_token",
    "prefix_lm",
    "infilling",
    "copying",
    "deshuffling",
    "autoencoding",
    "selective_copying",
    "associative_recall",
}


def arms(name, **params):
    return expand_arms([ObjectiveEntry(name=name, params=params)], SPECIALS)


@pytest.mark.parametrize(
    ("name", "params", "words"),
    [
        ("infilling", {"mask_rte": 0.1}, ["mask_rte", "mask_rate"]),
        ("infilling", {"mask_rate": 1.5}, ["mask_rate", "[0.01, 0.95]"]),
        ("infilling", {"length": "300-200"}, ["length", "lo <= hi"]),
        ("copying", {"length": "abc"}, ["length", "'lo-hi'"]),
        ("deshuffling", {"shuffle_rate": 0}, ["shuffle_rate", "[0.01, 1.0]"]),
        ("autoencoding", {"shuffle": "yes"}, ["shuffle", "true or false"]),
        ("selective_copying", {"context_position": "middle"}, ["context_position", "'before'"]),
        ("selective_copying", {"delimiter_length": "1-99"}, ["delimiter_length", "[1, 64]"]),
        ("associative_recall", {"key_length": 0}, ["key_length", "[1, 4096]"]),
        ("next_token", {"max_prompt": 1.5}, ["max_prompt", "integer"]),
        ("prefix_lm", {"prefix_fraction": 1.0}, ["prefix_fraction", "[0.01, 0.99]"]),
    ],
)
def test_bad_parameters_name_themselves_and_the_valid_range(name, params, words):
    with pytest.raises(BirdieError) as info:
        arms(name, **params)
    for word in [name, *words]:
        assert word in str(info.value)


def test_unknown_objective_suggests_a_name():
    with pytest.raises(BirdieError, match="did you mean 'infilling'"):
        arms("infiling")


def test_lists_expand_into_the_cartesian_product_of_arms():
    out = arms(
        "infilling",
        mask_rate=[0.05, 0.15, 0.5],
        mean_span=[3, 8, 32],
        length=["128-256", "256-512", "512-1024", "1024-2048"],
    )
    assert len(out) == 36 and {a.objective_class for a in out} == {"infilling"}
    assert abs(sum(a.weight for a in out) - 1.0) < 1e-9
    assert out[0].name == "infilling[mask_rate=0.05,mean_span=3,length=128-256]"
    # Every configured parameter reaches the objective the arm runs.
    assert {(a.objective.config.mask_rate, a.objective.band) for a in out} >= {(0.5, (1024, 2048))}


def test_each_class_has_its_own_paradigm_token():
    entries = [
        ObjectiveEntry(name=n, params=p)
        for n, p in [("copying", {"length": ["64-256", "256-2048"]}), ("deshuffling", {})]
    ]
    out = expand_arms(entries, SPECIALS)
    assert out[0].objective.paradigm == out[1].objective.paradigm != out[2].objective.paradigm


def test_describe_lists_every_builtin_with_parameters_and_defaults():
    listing = {d["name"]: d for d in describe_objectives()}
    assert set(listing) >= BUILTINS
    params = {p["name"]: p for p in listing["autoencoding"]["parameters"]}
    assert params["shuffle"]["default"] is False and params["shuffle"]["type"] == "bool"
    assert all(listing[n]["origin"] == "builtin" and listing[n]["doc"] for n in BUILTINS)


def test_an_objective_that_overruns_its_budget_is_named():
    import dataclasses

    import numpy as np

    from birdie_ssm.objectives import Objective, register_objective

    @dataclasses.dataclass(frozen=True)
    class NoConfig:
        pass

    @register_objective("test_greedy")
    class Greedy(Objective):
        Config = NoConfig

        def make(self, tokens, rng, budget):
            return tokens, tokens, tokens[:0]

    (arm,) = arms("test_greedy")
    with pytest.raises(BirdieError, match="'test_greedy' made an example of 201 tokens"):
        arm.objective.sample(np.arange(100), np.random.default_rng(0), 50)


EXPERIMENTS = sorted((Path(__file__).parents[2] / "configs" / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_mixtures_build_fit_and_shuffle_in_autoencoding(path):
    """Every run's mixture expands into arms that fit its rows; Birdie mixtures hold Birdie's
    autoencoding grid, shuffled and not."""
    from birdie_ssm.pipeline.inprocess import check_arms_fit

    spec = yaml.safe_load(path.read_text())
    seq_len = spec["shared"]["data.seq_len"]
    birdie_runs = 0
    for run in spec["runs"]:
        mixture = run["set"].get("objectives.mixture")
        if mixture is None:
            continue
        entries = [ObjectiveEntry(**entry) for entry in mixture]
        check_arms_fit(expand_arms(entries, SPECIALS), seq_len)
        autoencoding = [e for e in entries if e.name == "autoencoding"]
        if run["set"].get("controller.name") == "birdie":
            birdie_runs += 1
            assert autoencoding and autoencoding[0].params["shuffle"] == [False, True]
    assert birdie_runs >= 1
