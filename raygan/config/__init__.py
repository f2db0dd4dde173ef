"""The run configuration: a typed, frozen schema (``schema``), loading from YAML deltas, presets and
``--set`` overrides (``loading``) and the type, range and cross-field checks (``checks``)."""
from raygan.config.checks import from_dict
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
                                  SweepConfig,
                                  SynthConfig,
                                  TrackingConfig,
                                  TrainConfig,
)

__all__ = ["AuditConfig", "BoostingConfig", "ClusterConfig", "Config", "ConfigError", "DataConfig",
           "EnsembleConfig", "EvalConfig", "GANConfig", "GridEvalConfig", "OutputConfig", "SweepConfig",
           "SynthConfig", "TrackingConfig", "TrainConfig", "describe", "from_dict", "load_config",
           "parse_override"]
