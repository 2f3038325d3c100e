"""Splitting arrays into seeded train/val/test sets and iterating batches quickly."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


from ..errors import UserError

FRACTIONS = (0.8, 0.1, 0.1)


def split_sizes(n: int, fractions=FRACTIONS) -> tuple[int, int, int]:
    """How many of `n` examples the train, validation and test splits get."""
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return n_train, n_val, n - n_train - n_val


def check_splittable(n: int, where: str, otherwise: str = "", fractions=FRACTIONS) -> None:
    """Refuse too few examples for every split to get at least one, naming the smallest count that works (and
    `otherwise`, another way out)."""
    if min(split_sizes(n, fractions)) < 1:
        enough = next(m for m in range(n + 1, n + 1000) if min(split_sizes(m, fractions)) >= 1)
        train, val, test = split_sizes(n, fractions)
        raise UserError(f"{where} has {n} examples: the seeded {'/'.join(str(round(f * 100)) for f in fractions)} "
                        f"split would give {train} train, {val} validation and {test} test examples; every split "
                        f"needs at least one, so give at least {enough}{otherwise}")


def seeded_split(n: int, seed: int, fractions=FRACTIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays for a seeded train/val/test split with the given fractions."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val, _ = split_sizes(n, fractions)
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


def tensor_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
    return TensorDataset(torch.as_tensor(np.asarray(x), dtype=torch.float32),
                         torch.as_tensor(np.asarray(y), dtype=torch.float32))


def split_arrays(x: np.ndarray, y: np.ndarray, seed: int, fractions=FRACTIONS):
    """Three TensorDatasets (train, val, test) from arrays, split with a fixed seed."""
    return tuple(tensor_dataset(x[i], y[i]) for i in seeded_split(len(x), seed, fractions))


def batches(dataset: Dataset, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
            device: torch.device | str = "cpu"):
    """Yield (x, y) batches; in-memory TensorDatasets are sliced directly (no per-item collate)."""
    if isinstance(dataset, TensorDataset):
        x, y = dataset.tensors
        n = len(x)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield x[idx].to(device), y[idx].to(device)
        return
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
    for x, y in loader:
        yield x.float().to(device), y.float().to(device)
