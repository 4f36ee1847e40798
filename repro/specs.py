"""A training run as data: ``RunSpec`` = architecture, method, data set, preset, seed,
optimisation recipe and method options. Its hash names the run's directory, so a
finished run is found and reused instead of trained again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from repro.errors import ReproError


@dataclass(frozen=True)
class Recipe:
    """Optimisation hyper-parameters of a run; presets (repro/presets.py) fill them in."""

    epochs: int
    batch_size: int  # per process
    lr: float  # peak learning rate
    optimizer: str = "sgd"  # sgd | adamw
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    no_decay_norm_bias: bool = True  # official ResNet/MobileNet/Swin: no weight decay on norms and biases
    no_decay_embeddings: bool = False  # official Swin: none on position embeddings and bias tables
    schedule: str = "cosine"  # cosine | multistep (both per optimiser step)
    lr_min: float = 0.0  # cosine floor
    milestones: tuple[int, ...] = ()  # epochs, for multistep
    gamma: float = 0.1
    warmup_epochs: float = 0.0  # linear warm-up from warmup_start_factor * lr
    warmup_start_factor: float = 0.01
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None  # AlphaNet clips gradients by value
    ema_decay: float | None = None  # EMA of weights, torchvision reference style
    ema_steps: int = 32
    amp: str | None = None  # bf16 (CPU with AVX512-BF16/AMX, or GPU) | fp16 (GPU only)
    channels_last: bool = False
    augment: bool = True  # random crop + flip (in-memory data); torchvision presets (ImageNet)
    auto_augment: str | None = None  # ImageNet only: ta_wide | ra
    random_erase: float = 0.0
    interpolation: str = "bilinear"  # ImageNet resizing
    val_resize: int = 256  # ImageNet evaluation: resize to this, then centre-crop 224
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    train_subset: int | None = None  # first N training images (smoke runs)
    test_subset: int | None = None
    val_size: int | None = None  # held-out training images for model selection
    eval_all_every: int = 0  # evaluate all 2^S sub-networks on val every N epochs (0: never)
    compile: bool = False  # torch.compile the training step (CUDA: captured as CUDA graphs); eager is the reference
    # final evaluation: every sub-network also with BN statistics re-estimated on this many
    # training images (repro/recalibrate.py); 0: stored statistics only
    recalibrate_bn_images: int = 4096


@dataclass(frozen=True)
class MethodOptions:
    """Knobs of the training methods; each method says which ones it reads (repro/methods)."""

    alpha: float = 0.5  # weight of the super-net's cross-entropy; 1 - alpha on distillation
    temperature: float = 1.0
    kl_topk: int | None = None  # official ImageNet: KL over the super-net's top-500 classes
    two_backward: bool = True  # Algorithm 1's two backward passes (memory); False: one summed
    feature_distill: bool = False
    self_distill: bool = True  # False: base-net learns from labels (ablation, paper Table 3)
    skip_aware_norms: bool = True  # False: one shared norm set (ablation, paper Table 3)
    split: tuple[int, ...] | None = None  # mandatory blocks per stage (paper Table 7)
    distill_strategy: str = "super_to_base"  # paper Table 4
    depth: str | None = None  # individual / kd_individual: the network's skip config
    teacher: str | None = None  # kd_individual: teacher checkpoint path
    num_sampled: int = 2  # alphanet: random sub-networks per step
    divergence: str = "alpha"  # alphanet: alpha | kl
    alpha_min: float = -1.0  # alphanet's alpha-divergence range
    alpha_max: float = 1.0
    allow_duplicates: bool = True  # alphanet: a random draw may repeat (AlphaNet's default)
    bn_recalibration_images: int = 2000  # alphanet: BN statistics reset per evaluated sub-network
    skip_aware_shortcuts: bool = False  # adn: projection-shortcut norms skip-aware too (issue 13)
    drop_rate: float = 0.2  # stochastic_depth: per-sample drop probability of each skippable block


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's outcome (run-time choices such as paths,
    device and workers are not part of it)."""

    arch: str
    method: str
    dataset: str
    preset: str
    seed: int
    recipe: Recipe
    options: MethodOptions = field(default_factory=MethodOptions)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        try:
            return cls(**{**data, "recipe": _from_dict(Recipe, data["recipe"]),
                          "options": _from_dict(MethodOptions, data.get("options", {}))})
        except (KeyError, TypeError) as error:
            raise ReproError(f"malformed run spec: {error}") from None

    def identity(self) -> dict[str, Any]:
        """The spec without settings left at their defaults: adding a new setting with a
        default later does not change the hashes of existing runs."""
        data = self.to_dict()
        data["recipe"] = _non_default(self.recipe)
        data["options"] = _non_default(self.options)
        return data

    @property
    def hash(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        """Readable and unique: ``resnet_mini-adn-fashion_mnist-s0-1a2b3c4d5e``."""
        method = self.method + (f"-{self.options.depth}" if self.options.depth else "")
        return f"{self.arch}-{method}-{self.dataset}-s{self.seed}-{self.hash}"

    def replace(self, **changes) -> RunSpec:
        return dataclasses.replace(self, **changes)


def _non_default(obj) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        has_default = f.default is not dataclasses.MISSING
        if not has_default or value != f.default:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _from_dict(cls, data: dict[str, Any]):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise TypeError(f"unknown {cls.__name__} settings {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
