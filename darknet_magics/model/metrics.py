"""How good detections are: matching to the ground truth, AP the way darknet and COCO compute it (pure numpy).

Boxes are per image: ground truth ``(n, 5)`` arrays of ``class x0 y0 x1 y1`` and detections ``(m, 6)`` arrays of
``class score x0 y0 x1 y1``, corners relative to the image (IoU does not change when both axes are scaled, so it
is the IoU of the boxes in pixels).

Two averages, each the same as its reference, so that the numbers can be checked against it:

* `darknet_ap`: AlexeyAB/hank-ai's ``validate_detector_map``: a detection takes the same-class truth it overlaps
  most (IoU strictly above the threshold), all detections are ranked by score, a truth taken already makes a
  false positive, and AP is the area under the precision envelope (``-points 0``) or the mean of N points.
  darknet's mAP is the mean over *every* class (one without ground truth counts 0).
* `coco_ap`: pycocotools' COCOeval for boxes: per image and class the 100 best detections take the best
  still-free truth with IoU >= t, then 101 recall points; mAP@0.50:0.95 is the mean over t = 0.50, 0.55, ..., 0.95
  and over the classes that have ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

COCO_IOUS = np.linspace(0.5, 0.95, 10)
COCO_RECALLS = np.linspace(0.0, 1.0, 101)
COCO_MAX_DETS = 100
CONFIDENCES = np.linspace(0.0, 1.0, 101)  # where the precision/recall/F1 curves are sampled


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` (n, 4) with every box of `b` (m, 4), corners ``x0 y0 x1 y1``: an (n, m) array."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


@dataclass(frozen=True)
class Ranked:
    """All detections ranked by score (best first), with what darknet's map decides about each one."""

    image: np.ndarray  # index of the image
    cls: np.ndarray  # class id
    score: np.ndarray
    tp: np.ndarray  # bool: a true positive at the IoU it was ranked for
    gt_per_class: np.ndarray  # ground-truth boxes per class


def rank_darknet(truths: Sequence[np.ndarray], dets: Sequence[np.ndarray], classes: int, iou: float) -> Ranked:
    """darknet's matching (see the module's docstring): one `Ranked` over all images."""
    images, cls, score, target = [], [], [], []
    offset = 0
    for k, (gt, det) in enumerate(zip(truths, dets)):
        if len(det):
            overlap = iou_matrix(det[:, 2:6], gt[:, 1:5])
            if len(gt):
                overlap = np.where((det[:, None, 0] == gt[None, :, 0]) & (overlap > iou), overlap, 0.0)
                best = overlap.argmax(axis=1)
                hit = overlap[np.arange(len(det)), best] > 0
                target.append(np.where(hit, offset + best, -1))
            else:
                target.append(np.full(len(det), -1))
            images.append(np.full(len(det), k))
            cls.append(det[:, 0].astype(int))
            score.append(det[:, 1])
        offset += len(gt)
    gt_per_class = np.bincount(np.concatenate([g[:, 0].astype(int) for g in truths] or [np.zeros(0, int)]),
                               minlength=classes)[:classes] if truths else np.zeros(classes, int)
    if not score:
        empty = np.zeros(0)
        return Ranked(empty.astype(int), empty.astype(int), empty, empty.astype(bool), gt_per_class)
    image, klass, sc, tg = (np.concatenate(x) for x in (images, cls, score, target))
    order = np.argsort(-sc, kind="stable")
    image, klass, sc, tg = image[order], klass[order], sc[order], tg[order]
    taken = np.zeros(offset, bool)
    tp = np.zeros(len(sc), bool)
    for i, t in enumerate(tg):  # a truth counts once: the best-scored detection that takes it
        if t >= 0 and not taken[t]:
            taken[t] = tp[i] = True
    return Ranked(image, klass, sc, tp, gt_per_class)


def envelope_ap(tp: np.ndarray, n_gt: int, points: int = 0) -> float:
    """AP of one class's ranked true-positive flags: the area under the precision envelope (points=0, darknet's
    and VOC2010's), or the mean of the best precision at `points` evenly spaced recalls (11: VOC2007; 101)."""
    if n_gt <= 0 or not len(tp):
        return 0.0
    ctp = np.cumsum(tp)
    precision = ctp / np.arange(1, len(tp) + 1)
    recall = ctp / n_gt
    if points and points > 1:
        return float(np.mean([precision[recall >= r].max(initial=0.0) for r in np.linspace(0, 1, points)]))
    best = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * best))


def darknet_ap(ranked: Ranked, classes: int, points: int = 0) -> np.ndarray:
    """AP per class from `rank_darknet` (darknet's mAP is its mean over all `classes`)."""
    return np.array([envelope_ap(ranked.tp[ranked.cls == c], int(ranked.gt_per_class[c]), points)
                     for c in range(classes)])


def _coco_image(gt: np.ndarray, det: np.ndarray, ious: np.ndarray) -> np.ndarray:
    """COCOeval.evaluateImg for one image and class: (len(ious), len(det)) flags, `det` sorted by score."""
    matched = np.zeros((len(ious), len(det)), bool)
    if not len(det) or not len(gt):
        return matched
    overlap = iou_matrix(det[:, 2:6], gt[:, 1:5])
    for t, threshold in enumerate(ious):
        free = np.ones(len(gt), bool)
        for d in range(len(det)):
            candidates = np.where(free & (overlap[d] >= min(threshold, 1 - 1e-10)), overlap[d], -1.0)
            g = int(candidates.argmax())
            if candidates[g] >= 0:
                free[g] = False
                matched[t, d] = True
    return matched


def coco_ap(truths: Sequence[np.ndarray], dets: Sequence[np.ndarray], classes: int,
            ious: np.ndarray = COCO_IOUS) -> np.ndarray:
    """AP per class and IoU threshold as pycocotools computes it: a (classes, len(ious)) array, NaN for a class
    without ground truth (COCO leaves it out of the mean)."""
    out = np.full((classes, len(ious)), np.nan)
    for c in range(classes):
        scores, flags, n_gt = [], [], 0
        for gt, det in zip(truths, dets):
            g = gt[gt[:, 0] == c]
            d = det[det[:, 0] == c]
            d = d[np.argsort(-d[:, 1], kind="mergesort")][:COCO_MAX_DETS]
            n_gt += len(g)
            scores.append(d[:, 1])
            flags.append(_coco_image(g, d, ious))
        if n_gt == 0:
            continue
        sc = np.concatenate(scores)
        matched = np.concatenate(flags, axis=1)[:, np.argsort(-sc, kind="mergesort")]
        for t in range(len(ious)):
            tps = np.cumsum(matched[t])
            fps = np.cumsum(~matched[t])
            recall = tps / n_gt
            precision = tps / (tps + fps + np.spacing(1))
            precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
            at = np.searchsorted(recall, COCO_RECALLS, side="left")
            q = np.array([precision[i] if i < len(precision) else 0.0 for i in at])
            out[c, t] = q.mean()
    return out


def match_image(gt: np.ndarray, det: np.ndarray, iou: float) -> np.ndarray:
    """Same-class greedy matching in one image (best score first, each truth once, IoU >= `iou`): the index of
    the truth each detection takes, -1 for a false positive. `det` must be sorted by score."""
    taken = np.zeros(len(gt), bool)
    out = np.full(len(det), -1)
    if not len(gt) or not len(det):
        return out
    overlap = iou_matrix(det[:, 2:6], gt[:, 1:5])
    for d in range(len(det)):
        candidates = np.where(~taken & (gt[:, 0] == det[d, 0]) & (overlap[d] >= iou), overlap[d], -1.0)
        g = int(candidates.argmax())
        if candidates[g] >= 0:
            taken[g] = True
            out[d] = g
    return out


def confusion(truths: Sequence[np.ndarray], dets: Sequence[np.ndarray], classes: int, iou: float) -> np.ndarray:
    """A (classes+1, classes+1) matrix, rows the true class and columns the predicted one, the last of each being
    background: boxes of any class are paired by IoU (>= `iou`, highest first, each box once), an unpaired truth
    is a miss (column background), an unpaired detection a false alarm (row background). `dets`: those kept."""
    m = np.zeros((classes + 1, classes + 1), int)
    for gt, det in zip(truths, dets):
        overlap = iou_matrix(gt[:, 1:5], det[:, 2:6])
        pairs = np.argwhere(overlap >= iou) if overlap.size else np.zeros((0, 2), int)
        pairs = pairs[np.argsort(-overlap[pairs[:, 0], pairs[:, 1]], kind="stable")] if len(pairs) else pairs
        used_g, used_d = set(), set()
        for g, d in pairs:
            if g not in used_g and d not in used_d:
                used_g.add(g)
                used_d.add(d)
                m[int(gt[g, 0]), int(det[d, 0])] += 1
        for g in set(range(len(gt))) - used_g:
            m[int(gt[g, 0]), classes] += 1
        for d in set(range(len(det))) - used_d:
            m[classes, int(det[d, 0])] += 1
    return m


def curves(ranked: Ranked, classes: int, confidences: np.ndarray = CONFIDENCES) -> np.ndarray:
    """Precision, recall and F1 of each class at each confidence threshold: a (classes, 3, len(confidences))
    array. With no detection left above a threshold, precision is 1 (nothing claimed, nothing wrong)."""
    out = np.zeros((classes, 3, len(confidences)))
    for c in range(classes):
        tp = ranked.tp[ranked.cls == c]
        sc = ranked.score[ranked.cls == c]
        n_gt = int(ranked.gt_per_class[c])
        ctp = np.concatenate([[0], np.cumsum(tp)])
        kept = np.array([int(np.sum(sc >= x)) for x in confidences])
        hits = ctp[kept]
        precision = np.where(kept > 0, hits / np.maximum(kept, 1), 1.0)
        recall = hits / n_gt if n_gt else np.zeros(len(confidences))
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        out[c] = precision, recall, f1
    return out
