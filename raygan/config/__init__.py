"""The run configuration: a typed, frozen schema (``schema``), loading from YAML deltas, presets and
``--set`` overrides (``loading``), the per-field type, choice and range checks (``build``) and the
rules between fields (``checks``, with ``levers``, ``gan_space``, ``protocol_cells`` and ``names``).
What the rules know of the GAN families and the datasets is data here (``families``, ``datasets``):
the config is the bottom layer and imports no stage (tests/unit/test_import_graph.py)."""
from raygan.config.loading import describe, load_config, parse_override
from raygan.config.schema import (
                                  AuditConfig,
                                  BoostingConfig,
                                  ClusterConfig,
                                  Config,
                                  ConfigError,
                                  DataConfig,
                                  EnsembleConfig,
                                  EvalConfig,
                                  GANConfig,
                                  GridEvalConfig,
                                  OutputConfig,
                                  PrivacyConfig,
                                  SweepConfig,
                                  SynthConfig,
                                  TrackingConfig,
                                  TrainConfig,
                                  from_dict,
)

__all__ = ["AuditConfig", "BoostingConfig", "ClusterConfig", "Config", "ConfigError", "DataConfig",
           "EnsembleConfig", "EvalConfig", "GANConfig", "GridEvalConfig", "OutputConfig", "PrivacyConfig", "SweepConfig",
           "SynthConfig", "TrackingConfig", "TrainConfig", "describe", "from_dict", "load_config",
           "parse_override"]
