"""The cfg keys darknet's parsers read, per section, and the near-match for a key none of them reads (pure).

Darknet ignores a key its parser does not ask for, in silence: ``widht=64`` leaves the network at 416 px. The tables
are the union over the three flavors, read from their sources: ``parse_net_options``, ``parse_yolo``,
``parse_gaussian_yolo``, ``parse_region`` and the keys every layer reads in ``parse_network_cfg`` (pjreddie's and
AlexeyAB's ``src/parser.c``), and the same functions of hank-ai's ``src-lib/darknet_cfg.cpp`` (``CfgFile::parse_*``).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Optional

from ..errors import Problem
from .cfg import Cfg

__all__ = ["NET_KEYS", "SECTION_KEYS", "UnknownKey", "unknown_keys", "sections_reading", "cfg_key_problems"]

# Read in every section by the network loop (stopbackward, dontload, the per-layer learning_rate scale, ...).
_EVERY_LAYER = frozenset(
    "burnin_update clip dont_update dontload dontloadscales dontsave learning_rate numload onlyforward "
    "show_receptive_field smooth stopbackward train_only_bn truth".split())

NET_KEYS = frozenset(
    "B1 B2 adam adversarial_lr angle aspect attention augment_speed badlabels_rejection_percentage batch blur burn_in "
    "center channels clip contrastive contrastive_color contrastive_jit_flip cutmix decay dynamic_minibatch "
    "ema_alpha eps equidistant_point exposure flip gamma gaussian_noise height hue inputs label_smooth_eps "
    "learning_rate learning_rate_min letter_box loss_scale max_batches max_chart_loss max_crop max_ratio min_crop "
    "min_ratio mixup momentum mosaic mosaic_bound notruth num_sigmas_reject_badlabels optimized_memory policy power "
    "random resize_step saturation scale scales seq_scales sequential_subdivisions sgdr_cycle sgdr_mult step steps "
    "subdivisions time_steps track try_fix_nan unsupervised use_cuda_graph weights_reject_freq width "
    "workspace_size_limit_MB".split()) | _EVERY_LAYER

_YOLO_KEYS = frozenset(
    "anchors beta_nms classes cls_normalizer counters_per_class delta_normalizer dets_for_show dets_for_track "
    "embedding_layer focal_loss ignore_thresh iou_loss iou_normalizer iou_thresh iou_thresh_kind jitter "
    "label_smooth_eps map mask max max_delta new_coords nms_kind num obj_normalizer objectness_smooth random resize "
    "scale_x_y show_details sim_thresh track_ciou_norm track_history_size truth_thresh".split()) | _EVERY_LAYER

_GAUSSIAN_KEYS = frozenset(
    "anchors beta_nms classes cls_normalizer counters_per_class delta_normalizer ignore_thresh iou_loss "
    "iou_normalizer iou_thresh iou_thresh_kind jitter label_smooth_eps map mask max max_delta nms_kind num "
    "obj_normalizer objectness_smooth random resize scale_x_y truth_thresh uc_normalizer yolo_point".split()) | _EVERY_LAYER

_REGION_KEYS = frozenset(
    "absolute anchors background bias_match class_scale classes classfix coord_scale coords focal_loss jitter log map "
    "mask_scale max noobject_scale num object_scale random rescore resize softmax sqrt thresh tree".split()) | _EVERY_LAYER

# The sections whose keys are known here ([network] is darknet's other spelling of [net]).
SECTION_KEYS: dict[str, frozenset[str]] = {"net": NET_KEYS, "network": NET_KEYS, "yolo": _YOLO_KEYS,
                                           "Gaussian_yolo": _GAUSSIAN_KEYS, "region": _REGION_KEYS}


@dataclass(frozen=True)
class UnknownKey:
    """A key no parser of `sections` reads; `near` is the closest key they do read (difflib), if any."""

    key: str
    near: Optional[str]

    def describe(self) -> str:
        return f"{self.key}=" + (f" (did you mean {self.near}=?)" if self.near else "")


def unknown_keys(keys: Iterable[str], known: Iterable[str]) -> list[UnknownKey]:
    """The `keys` not in `known`, each with its near-match among `known` (case counts: darknet's does)."""
    known = set(known)
    found = []
    for key in keys:
        if key in known:
            continue
        near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        lower = [k for k in known if k.lower() == key.lower()]  # MAX_BATCHES: darknet compares with strcmp
        found.append(UnknownKey(key, (lower or near or [None])[0]))
    return found


def sections_reading(key: str) -> str:
    """The known sections whose parser reads `key`, as "[yolo] or [region]"; "" when none does."""
    names = [name for name, keys in SECTION_KEYS.items() if key in keys and name != "network"]
    return " or ".join(f"[{name}]" for name in names)


def cfg_key_problems(cfg: Cfg, file: Optional[str] = None) -> list[Problem]:
    """A warning for each key of a known section ([net], [yolo], [Gaussian_yolo], [region]) that darknet does not
    read there, with its line and the near-match."""
    found = []
    for section in cfg.sections:
        known = SECTION_KEYS.get(section.name)
        if known is None:
            continue
        lines: dict[str, int] = {}
        for option in section.options:
            lines.setdefault(option.key, option.line)
        for unknown in unknown_keys(lines, known):
            where = f"[{section.name}] at line {section.line}"
            elsewhere = sections_reading(unknown.key)
            fix = (f"remove it: darknet reads it only in {elsewhere} and ignores it in {where}"
                   if elsewhere else f"write {unknown.near}= (darknet ignores {unknown.key}= in {where})"
                   if unknown.near else f"remove it (darknet ignores it in {where})")
            found.append(Problem("unknown-cfg-key", f"[{section.name}] {unknown.key}= is a key darknet does not "
                                 "read there", fix=fix, severity="warning", file=file, line=lines[unknown.key]))
    return found
