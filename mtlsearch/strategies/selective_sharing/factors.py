"""Gradient factors: one Tensor-Train decomposition of all branches' gradients, read in one common basis.

The captured gradients are stacked into one tensor G[b, i_1, ..., i_d] with the branch index b as the first
mode and decomposed with tensorly's Tensor-Train, G ~ C_0 C_1 ... C_d. Row b of the first core,
C_0[0, b, :], holds branch b's coordinates on r_1 basis slices M_a = C_1[a] C_2 ... C_d that every branch
shares. Those slices are not orthonormal, so the row is weighted by K^(1/2), K[a, a'] = <M_a, M_a'>:
then ||f_b - f_c|| equals the distance between the two branches' TT reconstructions. Cores of separate
per-branch decompositions would not be comparable (a Tensor-Train is unique only up to an invertible matrix A
between neighbouring cores, C_k A and A^-1 C_{k+1}, so each would be in a basis of its own), which is why the
branches are decomposed together.
"""
from __future__ import annotations

import numpy as np
import tensorly as tl
from tensorly.decomposition import tensor_train
from tensorly.tenalg.svd import randomized_svd
from threadpoolctl import ThreadpoolController

GRAM_LIMIT = 128  # up to this smaller side an SVD through the Gram matrix is exact enough and cheapest
_THREADPOOLS: list[ThreadpoolController] = []


def _single_threaded_blas():
    """Small matrices: BLAS threads would only contend with the training threads (the library scan is cached)."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


def fast_svd(matrix, n_eigenvecs=None, random_state=None, **kwargs):
    """Truncated SVD for tensor_train: the eigenvectors of the small Gram matrix, else a seeded randomized SVD.

    tensorly's full SVD of a wide [branches, d] unfolding costs far more than the end of an epoch may.
    """
    rows, cols = matrix.shape
    k = min(rows, cols) if n_eigenvecs is None else min(n_eigenvecs, rows, cols)
    if min(rows, cols) > GRAM_LIMIT:
        return randomized_svd(matrix, n_eigenvecs=k, random_state=random_state)
    wide = rows <= cols
    gram = matrix @ matrix.T if wide else matrix.T @ matrix
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1][:k]
    s = np.sqrt(np.clip(values[order], 0.0, None))
    basis = vectors[:, order]
    other = (matrix.T @ basis if wide else matrix @ basis) / np.where(s > 0, s, 1.0)
    return (basis, s, other.T) if wide else (other, s, basis.T)


def slice_gram(cores: list[np.ndarray]) -> np.ndarray:
    """K[a, a'] = <M_a, M_a'> for the slices the cores after the first one span, contracted right to left."""
    gram = np.ones((1, 1))
    for core in reversed(cores):
        right = np.tensordot(core, gram, axes=([2], [0]))  # [a, o, c]
        gram = np.tensordot(right, core, axes=([1, 2], [1, 2]))  # [a, a']
    return gram


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def factor_vectors(gradients: np.ndarray, rank: int, seed: int = 0) -> np.ndarray:
    """[branches, r_1] coordinates of each branch's gradient in the common TT basis (not yet normalised)."""
    gradients = np.asarray(gradients, dtype=np.float32)
    if gradients.ndim < 2:
        raise ValueError(f"gradients need a branch mode and at least one weight mode, got shape {gradients.shape}")
    if gradients.ndim == 2:  # a weight vector: add a unit mode so the TT has a core after the first
        gradients = gradients[:, :, None]
    # largest weight mode first: the second unfolding is then tall and its SVD goes through a small Gram matrix
    gradients = gradients.transpose([0] + sorted(range(1, gradients.ndim), key=lambda m: -gradients.shape[m]))
    with _single_threaded_blas():
        cores = tensor_train(tl.tensor(gradients), rank=int(rank), svd=fast_svd, random_state=seed)
        first = tl.to_numpy(cores[0])[0]
        return first @ psd_sqrt(slice_gram([tl.to_numpy(c) for c in cores[1:]]))


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Unit-length rows (a zero row stays zero), so distances depend on direction alone."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def task_factors(gradients: np.ndarray, rank: int, seed: int = 0) -> np.ndarray:
    """One unit-length factor vector per branch (first mode of `gradients`), all in one common basis."""
    return normalise(factor_vectors(gradients, rank, seed))
