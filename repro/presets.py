"""Named training presets: each turns (architecture, data set) into a ``Recipe`` plus the
method options the recipe implies. Documented like experiment configs: what it is for,
the command, the time it takes.

- ``smoke``: seconds; tests and CI. 2,000 training images, one epoch.
- ``quick``: the default; ``python cli.py reproduce table1`` within ~15 minutes on 2 CPU
  cores (three ``resnet_mini`` runs on the full Fashion-MNIST, one epoch each).
- ``mini``: the CPU-sized study, trained to convergence: 15 epochs, bf16 autocast (on this
  project's CPUs, with AVX512-BF16/AMX, a resnet_mini ADN step ran 1.47x faster than fp32 with
  losses within a few percent: benchmarks/engine_throughput.py; on a GPU bf16 as well, so a
  seed's run is the same spec everywhere; a CPU without those units runs bf16's matrix
  products in fp32 kernels, x0.88 of fp32 on an AVX2 EPYC: ``repro.precision``); a
  ``resnet_mini`` ADN run takes about 40 minutes on 2 CPU cores with bf16 units (without them
  about 2 h: epochs of 450-470 s with two runs at a time) and a few minutes on one GPU.
  ``torch.compile`` stays off: on the CPU it did not speed the step up (x0.90 fp32, x1.0
  bf16), and the CUDA-graph capture is unmeasured.
- ``paper``: the official ImageNet recipes (github wchkang/depth README, 4 GPUs with
  ``torchrun --nproc_per_node=4``); batch sizes are per process.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from repro.errors import ReproError
from repro.models import ARCHS
from repro.registry import Registry
from repro.specs import MethodOptions, Recipe, RunSpec

TRANSFORMERS = ("vit", "swin")


@dataclass(frozen=True)
class Preset:
    name: str
    make: Callable[[str, str], tuple[Recipe, dict]]
    description: str


PRESETS: Registry[Preset] = Registry("preset")


def register_preset(name: str, description: str):
    return PRESETS.register(name, lambda fn: Preset(name, fn, description))


def is_transformer(arch: str) -> bool:
    return arch.startswith(TRANSFORMERS)


def cpu_recipe(arch: str, epochs: int, **overrides) -> Recipe:
    """The recipe of the small-data presets: SGD for conv nets, AdamW for transformers."""
    if is_transformer(arch):
        base = Recipe(epochs=epochs, batch_size=128, lr=2e-3, optimizer="adamw", weight_decay=0.05,
                      warmup_epochs=min(1.0, epochs / 5), clip_grad_norm=1.0)
    else:
        # channels_last: ~1.6x faster CPU convolutions here (measured on resnet_mini)
        base = Recipe(epochs=epochs, batch_size=128, lr=0.1, nesterov=True, weight_decay=5e-4,
                      warmup_epochs=min(1.0, epochs / 5), channels_last=True)
    return dataclasses.replace(base, **overrides)


@register_preset("smoke", "seconds: 2,000 training images, one epoch (tests, CI)")
def smoke(arch: str, dataset: str):
    # small batches: 2,000 images make 125 steps, enough for a deep, narrow net to learn.
    # Evaluating 16 sub-networks twice (stored and re-estimated BatchNorm statistics) is most
    # of a smoke ADN run, so the evaluation sets stay small: 200 validation and 500 test
    # images, statistics re-estimated (and AlphaNet's recalibrated) on 256 training images.
    return cpu_recipe(arch, epochs=1, batch_size=16, lr=0.05 if not is_transformer(arch) else 1e-3,
                      warmup_epochs=0.2, train_subset=2000, val_size=200, test_subset=500,
                      recalibrate_bn_images=256), \
        {"bn_recalibration_images": 256}


@register_preset("quick", "minutes: one epoch on the full training set (reproduce table1 in ~15 min on 2 cores)")
def quick(arch: str, dataset: str):
    return cpu_recipe(arch, epochs=1, warmup_epochs=0.1), {}


@register_preset("mini", "the CPU-sized study: 15 epochs, bf16 (about 40 min per resnet_mini ADN run on 2 cores)")
def mini(arch: str, dataset: str):
    return cpu_recipe(arch, epochs=15, eval_all_every=5, amp="bf16"), {}


@register_preset("paper", "the official ImageNet recipes per architecture (4 GPUs, torchrun)")
def paper(arch: str, dataset: str):
    family = arch.split("_")[0]
    recipes = {
        # torchrun --nproc_per_node=4 train_adn.py --model resnet50 --batch-size 64 --lr-scheduler
        # multisteplr --lr-multi-steps 60 100 140 --epochs 150 --norm-weight-decay 0 --bias-weight-decay 0
        "resnet50": Recipe(epochs=150, batch_size=64, lr=0.1, schedule="multistep", milestones=(60, 100, 140)),
        # --epochs 300 --lr 0.1 --wd 0.00001 --lr-multi-steps 150 225 285 --batch-size 64
        "mobilenet": Recipe(epochs=300, batch_size=64, lr=0.1, weight_decay=1e-5, schedule="multistep",
                            milestones=(150, 225, 285)),
        # --opt adamw --lr 0.001 --weight-decay 0.05 --lr-min 1e-5 --lr-warmup-epochs 20 --amp
        # --label-smoothing 0.1 --mixup-alpha 0.8 --cutmix-alpha 1.0 --clip-grad-norm 5.0
        # --random-erase 0.25 --auto-augment ta_wide --model-ema --batch-size 256
        "swin": Recipe(epochs=300, batch_size=256, lr=1e-3, optimizer="adamw", weight_decay=0.05,
                       lr_min=1e-5, warmup_epochs=20, warmup_start_factor=0.01, amp="fp16",
                       label_smoothing=0.1, mixup_alpha=0.8, cutmix_alpha=1.0, clip_grad_norm=5.0,
                       random_erase=0.25, auto_augment="ta_wide", ema_decay=0.99998,
                       no_decay_embeddings=True, interpolation="bicubic", val_resize=224),
        # --opt adamw --lr 0.00075 --wd 0.2 --lr-warmup-epochs 30 --lr-warmup-decay 0.033 --amp
        # --label-smoothing 0.11 --mixup-alpha 0.2 --auto-augment ra --clip-grad-norm 1
        # --cutmix-alpha 1.0 --model-ema --batch-size 256 (no norm/bias weight-decay exemption)
        "vit": Recipe(epochs=300, batch_size=256, lr=7.5e-4, optimizer="adamw", weight_decay=0.2,
                      no_decay_norm_bias=False, warmup_epochs=30, warmup_start_factor=0.033, amp="fp16",
                      label_smoothing=0.11, mixup_alpha=0.2, cutmix_alpha=1.0, auto_augment="ra",
                      clip_grad_norm=1.0, ema_decay=0.99998),
    }
    key = arch if arch in recipes else family
    if key not in recipes or arch.endswith("_mini"):
        raise ReproError(f"the paper preset has recipes for the ImageNet architectures only "
                         f"(resnet50, mobilenet_v2, vit_b_16, vit_b_32, swin_t), not {arch}")
    # official: KL over the super-net's top-500 classes on ImageNet's 1000
    return recipes[key], ({"kl_topk": 500} if dataset == "imagenet" else {})


def make_spec(arch: str, method: str, dataset: str, preset: str = "quick", seed: int = 0,
              recipe: dict | None = None, options: dict | None = None) -> RunSpec:
    """The spec of one run: the preset's recipe and option defaults, with overrides."""
    from repro.data import DATASETS
    from repro.methods import METHODS

    ARCHS.get(arch), METHODS.get(method), DATASETS.get(dataset)  # unknown names: one clear error each
    base_recipe, option_defaults = PRESETS.get(preset).make(arch, dataset)
    # the preset's option defaults apply to the methods that read them (kl_topk: not individual)
    reads = METHODS.get(method).reads
    base_options = MethodOptions(**{k: v for k, v in option_defaults.items() if k in reads})
    implied = dict(METHODS.get(method).recipe_defaults)
    try:
        base_recipe = dataclasses.replace(base_recipe, **{**implied, **(recipe or {})})
        base_options = dataclasses.replace(base_options, **(options or {}))
    except TypeError as error:
        raise ReproError(f"unknown setting: {error}") from None
    return RunSpec(arch, method, dataset, preset, seed, base_recipe, base_options)
