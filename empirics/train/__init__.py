"""Training: `config` (what a run is), `folder` (what it writes), `loop`
(the one training loop), `cli` (`python -m empirics.train`)."""
from empirics.train.config import (DEFAULT_LR, INTERPOLATIONS, OPTIMIZERS, Stage, TrainConfig,
                                   cusp_stages, parse_stages)
from empirics.train.folder import (CHECKPOINT, CONFIG, METRICS, EpochMetrics, TrainResult,
                                   read_checkpoint, read_config)
from empirics.train.loop import (TRAIN_THREADS, augment, build, evaluate, intra_op_threads,
                                 load_model, load_split, make_generators, make_optimizer,
                                 seeded_global_rng, train)
from empirics.train.cli import config_from_args, main, parser

__all__ = ["DEFAULT_LR", "INTERPOLATIONS", "OPTIMIZERS", "Stage", "TrainConfig", "cusp_stages",
           "parse_stages", "CHECKPOINT", "CONFIG", "METRICS", "EpochMetrics", "TrainResult",
           "read_checkpoint", "read_config", "augment", "build", "evaluate", "load_model",
           "load_split", "make_generators", "make_optimizer", "seeded_global_rng", "train",
           "config_from_args", "main", "parser", "TRAIN_THREADS", "intra_op_threads"]
