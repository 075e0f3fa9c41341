"""Settings: validation errors are clear; presets and overrides layer as documented."""

from __future__ import annotations

import dataclasses

import pytest

from workbench.config import PRESETS, ConfigError, RunConfig, SplitConfig, TrainConfig, build_config, help_of


def test_overlap_not_below_size_is_a_config_error():
    with pytest.raises(ConfigError, match="chunk_overlap"):
        SplitConfig(chunk_size=200, chunk_overlap=200)


def test_unknown_method_named():
    with pytest.raises(ConfigError, match="unknown method"):
        RunConfig(methods=["rag", "magic"])


def test_training_without_data_refused():
    with pytest.raises(ConfigError, match="no data"):
        TrainConfig(use_chunks=False, use_qa=False)


def test_every_field_has_help():
    for cls in (SplitConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            assert help_of(cls, f.name), f"{cls.__name__}.{f.name} has no help"


def test_layering_defaults_corpus_preset_overrides():
    cfg = build_config("c", "quick", {"chunk_size": 600, "top_k": 3}, {"train": {"rank": 4}}, seed=7)
    assert cfg.split.chunk_size == 600 and cfg.retrieval.top_k == 3
    assert cfg.train.epochs == PRESETS["quick"]["train"]["epochs"] != TrainConfig().epochs
    assert cfg.train.rank == 4 and cfg.seed == 7


def test_round_trip_dict():
    cfg = build_config("c", "standard")
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
