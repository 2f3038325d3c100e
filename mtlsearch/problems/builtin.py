"""Problems built from data that ships with scikit-learn: digits, multidigits, and planted-group synthetic."""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from .data import seeded_split, split_arrays, tensor_dataset
from .tasks import Problem, Task

SPLIT_SEED = 0  # the fixed split of the bundled data, independent of the training seed


def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return (bunch.images[:, None, :, :] / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def digits() -> Problem:
    """8x8 digits as 10 one-vs-all binary tasks, like Selective Sharing's MNIST set-up."""
    x, label = _digit_images()
    y = (label[:, None] == np.arange(10)[None, :]).astype(np.float32)
    train, val, test = split_arrays(x, y, SPLIT_SEED)
    tasks = [Task(f"is_{d}", "binary") for d in range(10)]
    return Problem("digits", tasks, train, val, test, input_shape=(1, 8, 8))


MULTIDIGIT_TASKS = [
    Task("left_digit", "multiclass", 10),
    Task("right_digit", "multiclass", 10),
    Task("left_is_even", "binary"),
    Task("sum_above_9", "binary"),
    Task("digit_sum", "regression"),
    Task("right_is_large", "binary"),
]


def multidigits(pairs_per_digit: int = 2) -> Problem:
    """Two digits side by side (1x8x16) with related and unrelated tasks of all three types.

    Pairs are drawn within each split of the digits, so no digit image appears in two splits.
    """
    x, label = _digit_images()
    rng = np.random.default_rng(SPLIT_SEED)
    splits = []
    for index in seeded_split(len(x), SPLIT_SEED):
        n = pairs_per_digit * len(index)
        left, right = rng.choice(index, n), rng.choice(index, n)
        a, b = label[left], label[right]
        y = np.stack([a, b, (a % 2 == 0), (a + b > 9), (a + b - 9.0) / 4.0, (b >= 5)], axis=1).astype(np.float32)
        splits.append(tensor_dataset(np.concatenate([x[left], x[right]], axis=3), y))
    return Problem("multidigits", list(MULTIDIGIT_TASKS), *splits, input_shape=(1, 8, 16))


def synthetic(n_tasks: int = 8, n_groups: int = 4, n_features: int = 32, n_samples: int = 3000,
              noise: float = 0.3, seed: int = SPLIT_SEED) -> Problem:
    """Regression tasks in `n_groups` planted groups; `true_groups` records which group each task is in.

    Group k's target is a random one-hidden-layer function of its own disjoint block of input features,
    so different groups share nothing; the tasks of a group are scaled, noisy copies of that target.
    """
    if not 1 <= n_groups <= n_tasks:
        raise ValueError(f"synthetic needs 1 <= n_groups <= n_tasks, got n_groups={n_groups}, n_tasks={n_tasks}")
    if n_features < n_groups:
        raise ValueError(f"synthetic needs n_features >= n_groups, got {n_features} < {n_groups}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, n_features)).astype(np.float32)
    blocks = np.array_split(np.arange(n_features), n_groups)
    targets = []
    for block in blocks:
        w1 = rng.standard_normal((len(block), 16)) / np.sqrt(len(block))
        w2 = rng.standard_normal(16)
        f = np.tanh(x[:, block] @ w1) @ w2
        targets.append((f - f.mean()) / f.std())
    groups = [t % n_groups for t in range(n_tasks)]
    scale = rng.uniform(0.8, 1.2, n_tasks)
    y = np.stack([scale[t] * targets[g] + noise * rng.standard_normal(n_samples) for t, g in enumerate(groups)], 1)
    train, val, test = split_arrays(x, y.astype(np.float32), seed)
    tasks = [Task(f"g{g}_t{t}", "regression") for t, g in enumerate(groups)]
    return Problem("synthetic", tasks, train, val, test, input_shape=(n_features,), true_groups=groups)
