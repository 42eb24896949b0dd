"""Training and evaluation: configuration, losses, optimisers, checkpoints, the training loop."""

from .checkpoint import (
    CheckpointError,
    CheckpointSaveError,
    CorruptCheckpointError,
    build_model_from_checkpoint,
    load_state,
    load_weights,
    read_metadata,
    resolve_checkpoint,
    resolve_resumable,
    save_checkpoint,
    unwrap_model,
    verify_checkpoint,
)
from .config import PRESETS_DIR, RUN_KEYS, TrainConfig, list_presets, load_config, resume_mismatches
from .distributed import DistContext, setup_distributed
from .guards import NonFiniteStateError
from .losses import distill_loss, kd_loss, mean_ce_loss, tet_loss
from .optim import make_optimizer, make_scheduler, param_groups
from .runlock import RunLock, RunLockedError
from .trainer import NonFiniteLossError, TrainResult, build_model, evaluate, make_loaders, seed_everything, train
from .transfer import InitReport, init_from_checkpoint, load_teacher, teacher_logits

__all__ = [
    "TrainConfig",
    "load_config",
    "list_presets",
    "PRESETS_DIR",
    "train",
    "evaluate",
    "build_model",
    "make_loaders",
    "seed_everything",
    "TrainResult",
    "NonFiniteLossError",
    "mean_ce_loss",
    "tet_loss",
    "kd_loss",
    "distill_loss",
    "load_teacher",
    "teacher_logits",
    "init_from_checkpoint",
    "InitReport",
    "param_groups",
    "make_optimizer",
    "make_scheduler",
    "save_checkpoint",
    "resolve_checkpoint",
    "load_state",
    "load_weights",
    "read_metadata",
    "build_model_from_checkpoint",
    "unwrap_model",
    "CheckpointError",
    "CorruptCheckpointError",
    "CheckpointSaveError",
    "resolve_resumable",
    "verify_checkpoint",
    "RUN_KEYS",
    "resume_mismatches",
    "NonFiniteStateError",
    "RunLock",
    "RunLockedError",
    "DistContext",
    "setup_distributed",
]
