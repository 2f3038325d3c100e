"""Splitting arrays into seeded train/val/test sets and iterating batches quickly."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


def seeded_split(n: int, seed: int, fractions=(0.8, 0.1, 0.1)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays for a seeded train/val/test split with the given fractions."""
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


def tensor_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
    return TensorDataset(torch.as_tensor(np.asarray(x), dtype=torch.float32),
                         torch.as_tensor(np.asarray(y), dtype=torch.float32))


def split_arrays(x: np.ndarray, y: np.ndarray, seed: int, fractions=(0.8, 0.1, 0.1)):
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
