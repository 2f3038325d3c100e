"""Problems built from data that ships with scikit-learn: digits, multidigits, and planted-group synthetic."""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from .data import check_splittable, seeded_split, split_arrays, tensor_dataset
from .tasks import Problem, Task

SPLIT_SEED = 0  # the fixed split of the bundled data, independent of the training seed


def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # here, not at import: scikit-learn's import takes seconds

    bunch = load_digits()
    return (bunch.images[:, None, :, :] / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def one_vs_all(name: str, x: np.ndarray, label: np.ndarray, info: dict | None = None) -> Problem:
    """Images of ten digits as 10 one-vs-all binary tasks `is_0`..`is_9` (Selective Sharing's MNIST set-up),
    split 80/10/10 with the fixed SPLIT_SEED."""
    y = (label[:, None] == np.arange(10)[None, :]).astype(np.float32)
    train, val, test = split_arrays(x, y, SPLIT_SEED)
    tasks = [Task(f"is_{d}", "binary") for d in range(10)]
    return Problem(name, tasks, train, val, test, input_shape=tuple(x.shape[1:]), info=info or {})


def digits() -> Problem:
    """8x8 digits as 10 one-vs-all binary tasks, like Selective Sharing's MNIST set-up."""
    return one_vs_all("digits", *_digit_images())


# Two digits, left and right: which tasks are expected to be related, and why, is in the README's Problems section.
PAIR_TASKS = [
    Task("left_digit", "multiclass", 10),
    Task("right_digit", "multiclass", 10),
    Task("left_is_even", "binary"),
    Task("sum_above_9", "binary"),
    Task("digit_sum", "regression"),
    Task("right_is_large", "binary"),
]


def pair_labels(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The labels [N, 6] of PAIR_TASKS for digit classes `left` and `right`; the digit sum is centred and scaled
    to about unit spread, (a + b - 9) / 4."""
    return np.stack([left, right, left % 2 == 0, left + right > 9, (left + right - 9.0) / 4.0, right >= 5],
                    axis=1).astype(np.float32)


def multidigits(pairs_per_digit: int = 2) -> Problem:
    """Two digits side by side (1x8x16) with related and unrelated tasks of all three types.

    Pairs are drawn within each split of the digits, so no digit image appears in two splits.
    """
    if pairs_per_digit < 1:
        raise UserError(f"multidigits needs pairs_per_digit >= 1, got {pairs_per_digit}")
    x, label = _digit_images()
    rng = np.random.default_rng(SPLIT_SEED)
    splits = []
    for index in seeded_split(len(x), SPLIT_SEED):
        n = pairs_per_digit * len(index)
        left, right = rng.choice(index, n), rng.choice(index, n)
        pair = np.concatenate([x[left], x[right]], axis=3)
        splits.append(tensor_dataset(pair, pair_labels(label[left], label[right])))
    return Problem("multidigits", list(PAIR_TASKS), *splits, input_shape=(1, 8, 16))


SYNTHETIC_TYPES = ("regression", "binary")  # dealt to the tasks in turn, then shuffled


def random_function(rng: np.random.Generator, x: np.ndarray, hidden: int = 16) -> np.ndarray:
    """A random one-hidden-layer tanh network of the columns of `x`, standardised over the samples."""
    w1 = rng.standard_normal((x.shape[1], hidden)) * 2 / np.sqrt(x.shape[1])  # pre-activations of spread 2: tanh bends
    f = np.tanh(x @ w1) @ rng.standard_normal(hidden)
    return (f - f.mean()) / f.std()


def first_seen_labels(labels) -> list[int]:
    """Group labels renumbered 0, 1, ... in the order the groups first appear, e.g. [2, 0, 2, 1] -> [0, 1, 0, 2]."""
    order = {}
    for label in labels:
        order.setdefault(int(label), len(order))
    return [order[int(label)] for label in labels]


def _observed(kind: str, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A task's labels from its latent z: z itself (regression), z above a random 50-80% quantile (binary, 20-50%
    positives), or z's tertile (multiclass, 3 classes)."""
    if kind == "binary":
        return (z > np.quantile(z, rng.uniform(0.5, 0.8))).astype(np.float64)
    if kind == "multiclass":
        return np.digitize(z, np.quantile(z, [1 / 3, 2 / 3])).astype(np.float64)
    return z / z.std()


def _check_synthetic(n_tasks: int, n_groups: int, n_features: int, n_samples: int, own: float, noise: float):
    rules = [(1 <= n_groups <= n_tasks, f"1 <= n_groups <= n_tasks, got n_groups={n_groups}, n_tasks={n_tasks}"),
             (n_features >= n_groups, f"n_features >= n_groups, got {n_features} < {n_groups}"),
             (own >= 0, f"own >= 0, got {own}"), (noise >= 0, f"noise >= 0, got {noise}")]
    for holds, rule in rules:
        if not holds:
            raise UserError(f"synthetic needs {rule}")
    check_splittable(n_samples, "synthetic's n_samples")


def synthetic(n_tasks: int = 8, n_groups: int = 4, n_features: int = 32, n_samples: int = 3000, own: float = 0.5,
              noise: float = 0.3, seed: int = SPLIT_SEED) -> Problem:
    """Tasks of mixed types in `n_groups` planted groups; `true_groups` records which group each task is in.

    Task t of group g observes z_t = f_g(x) + own * h_t(x) + noise * e: f_g, the group's shared nonlinear latent
    function, is a random tanh network of the group's own block of input features (so different groups share
    nothing), h_t is the task's own random tanh network of all features, e is Gaussian noise. `own` is the
    difficulty knob: at 0 the tasks of a group see one function; at 1 each task is as much its own as its
    group's. Tasks are named task_0, task_1, ...; neither names, order nor types say which group a task is in.
    """
    _check_synthetic(n_tasks, n_groups, n_features, n_samples, own, noise)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, n_features)).astype(np.float32)
    shared = [random_function(rng, x[:, block]) for block in np.array_split(np.arange(n_features), n_groups)]
    groups = first_seen_labels(rng.permutation([t % n_groups for t in range(n_tasks)]))
    kinds = rng.permutation([SYNTHETIC_TYPES[t % len(SYNTHETIC_TYPES)] for t in range(n_tasks)])
    columns, tasks = [], []
    for t, (g, kind) in enumerate(zip(groups, kinds)):
        z = shared[g] + own * random_function(rng, x) + noise * rng.standard_normal(n_samples)
        columns.append(_observed(kind, z, rng))
        tasks.append(Task(f"task_{t}", str(kind), 3 if kind == "multiclass" else 2))
    train, val, test = split_arrays(x, np.stack(columns, 1).astype(np.float32), seed)
    info = {"own": own, "noise": noise, "seed": seed}
    return Problem("synthetic", tasks, train, val, test, input_shape=(n_features,), true_groups=groups, info=info)
