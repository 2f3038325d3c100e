"""Real image datasets read through torchvision from a user's data root: MNIST, Fashion-MNIST and CIFAR-10
as 10 one-vs-all binary tasks, CelebA as its 40 binary attributes (images loaded lazily)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .data import seeded_split, tensor_dataset
from .tasks import Problem, Task

SPLIT_SEED = 0  # the fixed train/val split of the official training set
TRAIN_VAL_FRACTIONS = (0.9, 0.1, 0.0)


def task_name(label: str, prefix: str = "") -> str:
    """A label as an identifier: lowercase, non-alphanumeric runs -> '_' ('T-shirt/top' -> 'is_t_shirt_top');
    a leading digit gets 'attr_' ('5_o_Clock_Shadow' -> 'attr_5_o_clock_shadow')."""
    name = prefix + re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")
    return name if name.isidentifier() else f"attr_{name}"


def _open(dataset_class, name: str, data_root, download: bool, **kwargs):
    """Instantiate a torchvision dataset, turning 'not found' / download failures into a one-line UserError."""
    try:
        return dataset_class(str(data_root), download=download, **kwargs)
    except (RuntimeError, OSError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". You can use download")[0]
        raise UserError(f"cannot load dataset {name!r} from data root {str(data_root)!r} ({reason}); "
                        "pass `download` or place the files there", ("download",)) from None


def _float_images(images: np.ndarray, channels_last: bool) -> np.ndarray:
    """uint8 images [N,H,W] / [N,H,W,C] -> float32 [N,C,H,W] in [0,1], with a single float copy."""
    if images.ndim == 3:
        images = images[:, None]
    elif channels_last:
        images = images.transpose(0, 3, 1, 2)
    out = np.ascontiguousarray(images, dtype=np.float32)
    out /= 255.0
    return out


def _one_vs_all(name: str, train_set, test_set, labels: list[str], channels_last: bool,
                data_root) -> Problem:
    """A Problem with one binary 'is_<class>' task per class, from torchvision's `.data`/`.targets` arrays.

    The official train set is split 90/10 (seed 0) into our train and val; the official test set is our test.
    Splitting happens on the uint8 arrays, so only the final float copies are large.
    """
    classes = np.arange(len(labels))

    def convert(dataset, index=None):
        images, targets = np.asarray(dataset.data), np.asarray(dataset.targets, dtype=np.int64)
        if index is not None:
            images, targets = images[index], targets[index]
        y = (targets[:, None] == classes[None, :]).astype(np.float32)
        return tensor_dataset(_float_images(images, channels_last), y)

    train_index, val_index, _ = seeded_split(len(train_set.data), SPLIT_SEED, TRAIN_VAL_FRACTIONS)
    train, val, test = convert(train_set, train_index), convert(train_set, val_index), convert(test_set)
    tasks = [Task(task_name(label, "is_"), "binary") for label in labels]
    info = {"source": "torchvision", "data_root": str(data_root), "split_seed": SPLIT_SEED}
    return Problem(name, tasks, train, val, test, input_shape=tuple(train.tensors[0].shape[1:]), info=info)


def _classification(name: str, dataset_class, data_root, download: bool, labels=None,
                    channels_last: bool = False) -> Problem:
    train_set = _open(dataset_class, name, data_root, download, train=True)
    test_set = _open(dataset_class, name, data_root, download, train=False)
    labels = list(labels if labels is not None else train_set.classes)
    return _one_vs_all(name, train_set, test_set, labels, channels_last, data_root)


def mnist(data_root: str | Path, download: bool = False) -> Problem:
    """MNIST as 10 one-vs-all tasks `is_0`..`is_9` (named like the built-in `digits`), inputs 1x28x28."""
    from torchvision.datasets import MNIST
    return _classification("mnist", MNIST, data_root, download, labels=[str(d) for d in range(10)])


def fashion_mnist(data_root: str | Path, download: bool = False) -> Problem:
    """Fashion-MNIST as 10 one-vs-all tasks named after its classes (`is_t_shirt_top`, ...), inputs 1x28x28."""
    from torchvision.datasets import FashionMNIST
    return _classification("fashion-mnist", FashionMNIST, data_root, download)


def cifar10(data_root: str | Path, download: bool = False) -> Problem:
    """CIFAR-10 as 10 one-vs-all tasks named after its classes (`is_airplane`, ...), inputs 3x32x32."""
    from torchvision.datasets import CIFAR10
    return _classification("cifar10", CIFAR10, data_root, download, channels_last=True)


def _rgb(image):
    return image.convert("RGB")


def _float_target(target: torch.Tensor) -> torch.Tensor:
    return target.float()


def celeba(data_root: str | Path, download: bool = False, image_size: int = 64) -> Problem:
    """CelebA's 40 binary attributes as tasks; torchvision's train/valid/test partition; images read lazily.

    Each item is (x float [3,image_size,image_size] in [0,1], y float32 [40] of 0/1).
    """
    from torchvision import transforms
    from torchvision.datasets import CelebA

    transform = transforms.Compose([transforms.Lambda(_rgb), transforms.Resize(image_size),
                                    transforms.CenterCrop(image_size), transforms.ToTensor()])
    train, val, test = (_open(CelebA, "celeba", data_root, download, split=split,
                              target_type="attr", transform=transform, target_transform=_float_target)
                        for split in ("train", "valid", "test"))
    # the header line of list_attr_celeba.txt may end in a space, which the csv reader turns into an empty name
    names = [n for n in train.attr_names if n.strip()]
    if len(names) != train.attr.shape[1]:
        raise UserError(f"celeba under {str(data_root)!r}: list_attr_celeba.txt names {len(names)} attributes "
                        f"but has {train.attr.shape[1]} columns")
    tasks = [Task(task_name(n), "binary") for n in names]
    info = {"source": "torchvision", "data_root": str(data_root), "image_size": image_size}
    return Problem("celeba", tasks, train, val, test, input_shape=(3, image_size, image_size), info=info)


TORCHVISION_DATASETS = {
    "mnist": (mnist, "MNIST as 10 one-vs-all binary tasks; 60000 train (90/10 train/val) / 10000 test; "
                     "needs --data-root"),
    "fashion-mnist": (fashion_mnist, "Fashion-MNIST as 10 one-vs-all binary tasks; 60000 train (90/10 train/val) "
                                     "/ 10000 test; needs --data-root"),
    "cifar10": (cifar10, "CIFAR-10 as 10 one-vs-all binary tasks; 50000 train (90/10 train/val) / 10000 test; "
                         "needs --data-root"),
    "celeba": (celeba, "CelebA faces with 40 binary attribute tasks, 64x64, read lazily; 162770 train / 19867 val "
                       "/ 19962 test; needs --data-root"),
}
