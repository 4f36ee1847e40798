"""Distillation losses (paper Algorithm 1; AlphaNet's alpha-divergence for the baseline)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
                    topk: int | None = None) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    topk: restrict both distributions to the teacher's top-k classes (the official ImageNet
    training uses 500 of 1000). The teacher is detached: only the student learns.
    """
    teacher_logits = teacher_logits.detach()
    if topk is not None and topk < teacher_logits.shape[1]:
        teacher_logits, classes = teacher_logits.topk(topk, dim=1)
        student_logits = student_logits.gather(1, classes)
    t = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), F.softmax(teacher_logits.float() / t, dim=1),
                    reduction="batchmean") * t * t


def feature_kl(student: list[torch.Tensor], teacher: list[torch.Tensor], temperature: float = 1.0,
               channel_dim: int = 1) -> torch.Tensor:
    """Intermediate-feature distillation: per stage, KL between the channel softmaxes of the
    teacher's and the student's stage outputs, summed over positions and stages, averaged
    over the batch (the official ``--fpn`` option's normalisation)."""
    t = temperature
    total = student[0].new_zeros(())
    for s, f in zip(student, teacher):
        total = total + F.kl_div(F.log_softmax(s.float() / t, dim=channel_dim),
                                 F.softmax(f.detach().float() / t, dim=channel_dim), reduction="batchmean")
    return total * t * t


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy for class indices or (mixup/cutmix) probability targets."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


def _alpha_terms(student_logits, teacher_logits, alpha: float, ratio_clip: float):
    """AlphaNet's alpha-divergence D_alpha(p_teacher || q_student), per sample, and the
    per-sample surrogate whose gradient is the divergence's (it flows through log q only).

    The ratio p / q is taken in log space: confident logits make softmax probabilities
    underflow to 0, and 0 / 0 or 0 * log 0 would turn both values into NaN."""
    log_q = F.log_softmax(student_logits, dim=1)
    q = log_q.detach().exp()
    log_ratio = F.log_softmax(teacher_logits, dim=1).detach() - log_q.detach()
    if abs(alpha) < 1e-3:  # alpha -> 0: reverse KL
        log_ratio = log_ratio.clamp(max=math.log(ratio_clip))
        f, offset, rho = -log_ratio, 0.0, log_ratio - 1.0
    elif abs(alpha - 1.0) < 1e-3:  # alpha -> 1: KL; q * ratio is p, so no 0 * inf arises
        p = F.softmax(teacher_logits, dim=1).detach()
        return (p * log_ratio).sum(dim=1), -(p * log_q).sum(dim=1)
    else:
        powered = (alpha * log_ratio).exp().clamp(0, ratio_clip)
        offset = 1.0 / (alpha * (alpha - 1.0))
        f, rho = powered * offset, powered / alpha + offset
    divergence = (q * (f - offset)).sum(dim=1)
    surrogate = -(q * rho * log_q).sum(dim=1)
    return divergence, surrogate


def alpha_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, alpha_min: float = -1.0,
                     alpha_max: float = 1.0, ratio_clip: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """AlphaNet's adaptive alpha-divergence (Wang et al., ICML 2021).

    Per sample, the larger of D_{alpha_min} and D_{alpha_max} is minimised. Returns
    (surrogate loss to backpropagate, divergence to log): the surrogate's *value* is not a
    divergence and can be negative. Computed in fp32.
    """
    student_logits, teacher_logits = student_logits.float(), teacher_logits.detach().float()
    d_low, s_low = _alpha_terms(student_logits, teacher_logits, alpha_min, ratio_clip)
    d_high, s_high = _alpha_terms(student_logits, teacher_logits, alpha_max, ratio_clip)
    pick_low = (d_low > d_high).float()
    surrogate = pick_low * s_low + (1 - pick_low) * s_high
    divergence = pick_low * d_low + (1 - pick_low) * d_high
    return surrogate.mean(), divergence.mean().detach()
