"""The data a run spec trains and evaluates on: ``load_data`` arguments and batch mixing."""
from __future__ import annotations

from repro.models import ARCHS
from repro.specs import RunSpec

# Evaluation batches are at least this large: a small training batch (the smoke preset's 16)
# made evaluating every sub-network twice (stored and re-estimated statistics) most of a
# smoke run's time. The images on which BatchNorm statistics are re-estimated are joined into
# batches of that size too (the loader's batches cannot be larger than a tiny training set).
# The mini and quick presets train with 128 already, so their evaluation is as before.
MIN_EVAL_BATCH = 128


def data_settings(spec: RunSpec) -> dict:
    """The ``load_data`` arguments a spec determines. ``fake`` data takes the shape and
    class count of the architecture's native input."""
    r = spec.recipe
    settings = dict(batch_size=r.batch_size, eval_batch_size=max(r.batch_size, MIN_EVAL_BATCH), seed=spec.seed,
                    train_subset=r.train_subset, test_subset=r.test_subset, val_size=r.val_size, augment=r.augment,
                    channels_last=r.channels_last)
    if spec.dataset == "imagenet":
        settings.update(auto_augment=r.auto_augment, random_erase=r.random_erase, interpolation=r.interpolation,
                        val_resize=r.val_resize)
    if spec.dataset == "fake":
        arch = ARCHS.get(spec.arch)
        settings.update(fake_shape=(arch.in_channels, arch.resolution, arch.resolution),
                        fake_num_classes=arch.num_classes)
    return settings


def mixup_cutmix(recipe, num_classes: int):
    """torchvision's batch MixUp/CutMix (one of them per batch), as the paper's ViT/Swin recipes."""
    from torchvision.transforms import v2

    choices = []
    if recipe.mixup_alpha > 0:
        choices.append(v2.MixUp(alpha=recipe.mixup_alpha, num_classes=num_classes))
    if recipe.cutmix_alpha > 0:
        choices.append(v2.CutMix(alpha=recipe.cutmix_alpha, num_classes=num_classes))
    return v2.RandomChoice(choices) if choices else None
