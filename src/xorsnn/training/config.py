"""Training configuration: one dataclass, YAML presets shipped with the package, CLI overrides.

Precedence: dataclass defaults < ``--config`` YAML file < command-line flags. Every field has a
help text (shown by ``xorsnn train --help``). Unknown keys in a YAML file raise ``ValueError``.

:meth:`TrainConfig.validate` is the one place where settings are checked -- for the CLI, YAML files
and the Python API alike: every field's type (booleans are not integers, floats must be finite)
and every numeric range (``lr > 0``, ``weight_decay >= 0``, ``grad_clip > 0``, ...).

Resuming: :data:`RUN_KEYS` are the settings that define a run (model, data, objective, optimiser,
schedule, seed). ``--resume`` refuses when any of them differs from the checkpoint's configuration
(:func:`resume_mismatches`); the others (``epochs``, device, logging, workers) may change. Extending
``epochs`` keeps the schedule's shape but re-targets it to the new total length: from the resumed
step on, the learning rate follows the schedule of ``epochs * steps_per_epoch`` steps (so a cosine
or one-cycle schedule jumps to the value the longer schedule has at that step). ``config.yaml``
records the new ``epochs``; earlier epochs ran under the shorter schedule, as ``metrics.csv``'s
``lr`` column shows.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import check_choice

__all__ = ["TrainConfig", "load_config", "PRESETS_DIR", "list_presets", "preset_description", "RUN_KEYS",
           "resume_mismatches"]

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""``torch.compile`` modes of ``--compile-mode``; on CUDA the two in :data:`CUDAGRAPH_MODES` replay CUDA graphs."""
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")


RUN_KEYS = ("model", "model_kwargs", "dataset", "train_subset", "test_subset", "image_size", "T", "loss", "tet_lambda",
            "tet_means", "label_smoothing", "teacher", "kd_lambda", "kd_tau", "batch_size", "optimizer", "lr",
            "momentum", "nesterov", "weight_decay", "schedule", "warmup_epochs", "min_lr_ratio", "grad_clip",
            "online", "online_k", "augment", "pad_mode", "crop_padding", "amp", "seed")
"""Settings that define a run: ``--resume`` refuses to change them."""

# model arguments that come from other settings: setting them in model_kwargs would make the run and
# its record (config.yaml, result.json) disagree
_DERIVED_MODEL_ARGS = {"T": "set the time steps with T (--T)", "num_classes": "it comes from the dataset",
                       "in_channels": "it comes from the dataset"}


def _f(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002 - mirrors argparse
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """All settings of a training run (see each field's help)."""

    # -- what ------------------------------------------------------------------------------
    model: str = _f("xoresnet19", "registered model name (see `xorsnn list`)")
    model_kwargs: dict[str, Any] = _f({}, "extra model arguments, e.g. {xor_mode: output, neuron: {tau: 1.5}}")
    dataset: str = _f("cifar10", "digits | fashion_mnist | cifar10 | cifar100 | imagefolder | cifar10_dvs")
    data_dir: str | None = _f(None, "dataset directory (default: $XORSNN_DATA, else ./data)")
    download: bool = _f(False, "download the dataset if missing (needs internet; md5-checked)")
    train_subset: int | None = _f(None, "use a random subset of this many training samples (seeded)")
    test_subset: int | None = _f(None, "use a random subset of this many test samples (seeded)")
    image_size: int | None = _f(None, "crop size for class-folder datasets / resize for event data")
    T: int = _f(4, "time steps (static images are repeated T times)")
    # -- objective -------------------------------------------------------------------------
    loss: str = _f("ce", "ce (cross-entropy of the time-mean) | tet (per-step CE + lambda * MSE)",
                   choices=("ce", "tet"))
    tet_lambda: float = _f(0.0, "TET: weight of the MSE regulariser (official code default 1e-3)")
    tet_means: float = _f(1.0, "TET: target value phi of the MSE regulariser")
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy")
    teacher: str | None = _f(None, "knowledge distillation from a frozen teacher: a checkpoint (run directory, epoch "
                             "folder or model.safetensors) of any registered model, e.g. an SNN's stage 1 or an "
                             "ANN trained with --model ann_reverb_resnet20; or NAME:WEIGHTS_FILE (registered name + "
                             "state dict)")
    kd_lambda: float = _f(0.5, "KD weight: loss = (1 - kd_lambda) * task + kd_lambda * kd_tau^2 * mean_t "
                               "KL(softmax(z_teacher/kd_tau) || softmax(O_t/kd_tau)); only with --teacher")
    kd_tau: float = _f(1.0, "KD temperature (only with --teacher)")
    # -- optimisation ----------------------------------------------------------------------
    epochs: int = _f(100, "training epochs")
    batch_size: int = _f(128, "batch size per process")
    eval_batch_size: int | None = _f(None, "evaluation batch size (default: 2 x batch_size)")
    optimizer: str = _f("sgd", "sgd | adamw", choices=("sgd", "adamw"))
    lr: float = _f(0.1, "peak learning rate")
    momentum: float = _f(0.9, "SGD momentum")
    nesterov: bool = _f(False, "Nesterov momentum (SGD)")
    weight_decay: float = _f(5e-4, "weight decay (applied to conv/linear weights only, not BN or biases)")
    schedule: str = _f("cosine", "cosine | onecycle | constant (per-step)", choices=("cosine", "onecycle", "constant"))
    warmup_epochs: float = _f(0.0, "linear warm-up length in epochs (cosine/constant)")
    min_lr_ratio: float = _f(0.0, "final lr of the cosine schedule as a fraction of lr")
    grad_clip: float | None = _f(None, "clip the global gradient norm to this value")
    online: str = _f("none", "none (BPTT over the whole sequence) | sltt (per-step backward, detached membranes: "
                             "activation memory O(1) in T) | sltt-k (SLTT, only --online-k random steps "
                             "back-propagate)",
                     choices=("none", "sltt", "sltt-k"))
    online_k: int | None = _f(None, "SLTT-K: time steps back-propagated per batch, 1..T (only with --online sltt-k)")
    init_from: str | None = _f(None, "initialise from a checkpoint of the same architecture (binary layers "
                                     "take a full-precision conv's weight as their latent weight), e.g. stage 2 "
                                     "from stage 1; ignored when resuming")
    augment: bool = _f(True, "dataset's standard augmentation (random crop with padding, flips where valid)")
    pad_mode: str = _f("constant", "random-crop padding: constant (zeros) | reflect", choices=("constant", "reflect"))
    crop_padding: int | None = _f(None, "random-crop padding in pixels (default: the dataset's; 0 = flips only)")
    # -- performance -----------------------------------------------------------------------
    device: str = _f("auto", "auto | cpu | cuda | cuda:N")
    amp: str = _f("none", "autocast on GPU: none | bf16 | fp16", choices=("none", "bf16", "fp16"))
    channels_last: bool = _f(False, "channels_last memory format (GPU)")
    compile: bool = _f(False, "torch.compile the model")
    compile_mode: str = _f("default", "torch.compile mode with --compile: default | reduce-overhead (CUDA graphs on "
                                      "CUDA) | max-autotune | max-autotune-no-cudagraphs", choices=COMPILE_MODES)
    sync_bn: bool = _f(False, "synchronise batch-norm statistics across DDP processes (CUDA; time-aware SyncBN)")
    num_workers: int = _f(4, "data-loading workers for folder/event datasets")
    # -- bookkeeping -----------------------------------------------------------------------
    seed: int = _f(0, "random seed (model init, data order, augmentation)")
    out_dir: str | None = _f(None, "run directory (default: runs/<model>_<dataset>)")
    resume: bool = _f(False, "continue the run in out_dir from its last checkpoint")
    keep_last: int = _f(2, "epoch checkpoints to keep (the best one is always kept)")
    eval_every: int = _f(1, "evaluate every N epochs (and at the end)")
    log_interval: int = _f(20, "steps between progress-bar / NaN checks on GPU (every step on CPU)")
    progress: bool = _f(True, "show a progress bar per epoch")
    tensorboard: bool = _f(False, "also log to TensorBoard (if installed)")

    # -- helpers ---------------------------------------------------------------------------
    def resolved_data_dir(self) -> str:
        return self.data_dir or os.environ.get("XORSNN_DATA") or "data"

    def resolved_out_dir(self) -> str:
        return self.out_dir or os.path.join("runs", f"{self.model}_{self.dataset}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (``ValueError`` on unknown keys)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        unknown = set(data) - set(cls.field_names())
        if unknown:
            raise ValueError(f"unknown config key(s) {sorted(unknown)}; valid keys are {cls.field_names()}")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting and the expected value."""
        self._validate_types()
        for f in dataclasses.fields(self):
            if f.metadata.get("choices"):
                check_choice(f.name, getattr(self, f.name), f.metadata["choices"])
        for name in ("epochs", "batch_size", "T", "eval_every", "keep_last", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 for training (BatchNorm needs more than one sample per "
                             f"batch), got {self.batch_size}; use --batch-size 2 or more")
        self._validate_ranges()
        self._validate_model_kwargs()
        self._validate_online()
        self._validate_compile()
        for name in ("train_subset", "test_subset", "image_size", "eval_batch_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
        if self.crop_padding is not None and self.crop_padding < 0:
            raise ValueError(f"crop_padding must be a non-negative integer or None, got {self.crop_padding!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")

    def _validate_types(self) -> None:
        for f in dataclasses.fields(self):
            kinds = {k.strip() for k in str(f.type).split("|")}
            value = getattr(self, f.name)
            if value is None and "None" in kinds:
                continue
            ok, expected = _type_ok(value, kinds)
            if not ok:
                raise ValueError(f"{f.name} must be {expected}, got {value!r} ({type(value).__name__})")

    def _validate_ranges(self) -> None:
        checks = [
            ("lr", self.lr > 0, "> 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "in [0, 1]"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "> 0 (or None for no clipping)"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("tet_lambda", 0 <= self.tet_lambda <= 1, "in [0, 1]"),
            ("kd_lambda", 0 <= self.kd_lambda <= 1, "in [0, 1]"),
            ("kd_tau", self.kd_tau > 0, "> 0"),
            ("warmup_epochs", 0 <= self.warmup_epochs <= self.epochs, f"in [0, epochs={self.epochs}]"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name} must be {expected}, got {getattr(self, name)}")

    def _validate_model_kwargs(self) -> None:
        for key, why in _DERIVED_MODEL_ARGS.items():
            if key in self.model_kwargs:
                raise ValueError(f"model_kwargs[{key!r}]={self.model_kwargs[key]!r} conflicts with the run's "
                                 f"settings: {why}, not with --model-arg {key}=...")

    def _validate_online(self) -> None:
        if self.online == "sltt-k":
            k = self.online_k
            if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= self.T:
                raise ValueError(f"online_k must be an int in [1, T={self.T}] with online='sltt-k', got {k!r}")
        elif self.online_k is not None:
            raise ValueError(f"online_k is only used with online='sltt-k' (online={self.online!r})")
        if self.online != "none" and self.amp == "fp16":
            raise ValueError("online training (SLTT) back-propagates inside the step loop and does not support "
                             "amp='fp16' loss scaling; use amp='bf16' or 'none'")

    def _validate_compile(self) -> None:
        if self.online != "none" and self.compile:
            raise ValueError("online training (SLTT) runs the model step by step; compile is not supported with it")
        if self.compile_mode != "default" and not self.compile:
            raise ValueError(f"compile_mode={self.compile_mode!r} takes effect only with compile=true: add --compile")


def _type_ok(value: Any, kinds: set[str]) -> tuple[bool, str]:
    """Whether ``value`` has one of the annotated ``kinds`` (strict: a bool is not an int, floats are finite)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if "bool" in kinds:
        return isinstance(value, bool), "true or false"
    if "int" in kinds:
        return is_int, "an integer"
    if "float" in kinds:
        ok = (is_int or isinstance(value, float)) and math.isfinite(value)
        return ok, "a finite number"
    if "str" in kinds:
        return isinstance(value, str), "a string"
    if any(k.startswith("dict") for k in kinds):
        return isinstance(value, dict), "a mapping"
    return True, ""


def _normalised(value: Any) -> Any:
    """``value`` as JSON would round-trip it (tuples become lists), for comparing saved and new configs."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def resume_mismatches(saved: dict[str, Any], new: TrainConfig) -> list[str]:
    """``"key: old -> new"`` for every :data:`RUN_KEYS` setting where ``new`` differs from ``saved``
    (keys missing from an older ``saved`` config count as their defaults)."""
    defaults = TrainConfig().to_dict()
    current = new.to_dict()
    out = []
    for key in RUN_KEYS:
        old = saved.get(key, defaults[key])
        if _normalised(old) != _normalised(current[key]):
            out.append(f"{key}: {old!r} -> {current[key]!r}")
    return out


def list_presets() -> list[str]:
    """Names of the YAML presets shipped with the package."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_description(name: str) -> str:
    """The first sentence of a shipped preset's header comment (its one-line description)."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"no preset {name!r}; presets: {list_presets()}")
    header = itertools.takewhile(lambda line: line.startswith("#"), path.read_text().splitlines())
    text = " ".join(line.lstrip("#").strip() for line in header)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def load_config(path_or_name: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config: an existing file, or a shipped preset by name (``cifar10_resnet19_tet``,
    ``presets/cifar10_resnet19_tet.yaml``). Returns the raw mapping (validated by :class:`TrainConfig`)."""
    import yaml

    p = Path(path_or_name).expanduser()
    if not p.is_file():
        candidate = PRESETS_DIR / (p.stem + ".yaml")
        if not candidate.is_file():
            raise ValueError(f"config {str(path_or_name)!r} is neither a file nor a shipped preset; presets: "
                             f"{list_presets()}")
        p = candidate
    try:
        with open(p) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{p} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p} must contain a YAML mapping of config keys, got {type(data).__name__}")
    unknown = set(data) - set(TrainConfig.field_names())
    if unknown:
        raise ValueError(f"{p}: unknown config key(s) {sorted(unknown)}; valid keys are {TrainConfig.field_names()}")
    return data
