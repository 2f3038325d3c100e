"""The torchvision loaders, run for real on tiny dataset files written into tmp_path (no network)."""
from __future__ import annotations

import os
import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision.datasets.celeba
import torchvision.datasets.cifar
from PIL import Image

from mtlsearch.cli import flag
from mtlsearch.errors import UserError
from mtlsearch.problems.data import batches, seeded_split
from mtlsearch.problems.torchvision_sets import (TORCHVISION_DATASETS, celeba, cifar10, fashion_mnist, mnist,
                                                 task_name)

N_TRAIN, N_TEST = 50, 20
TRAIN_INDEX, VAL_INDEX, _ = seeded_split(N_TRAIN, 0, (0.9, 0.1, 0.0))


def _files_exist(fpath, md5=None):
    # md5 checks would need the real files: only check that the file is there
    return os.path.isfile(fpath)


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST

def _write_idx(raw, prefix: str, images: np.ndarray, labels: np.ndarray):
    n, h, w = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x00000803, n, h, w) + images.tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x00000801, n) + labels.tobytes())


def _write_mnist(root, folder: str):
    rng = np.random.default_rng(1)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write_idx(raw, prefix, images, labels)
        arrays[prefix] = (images, labels)
    return arrays


def _check_one_vs_all(problem, arrays, images_chw):
    """Split sizes, one-hot y matching the written labels, and pixels = bytes / 255 (in the seeded split order)."""
    assert problem.sizes() == {"train": 45, "val": 5, "test": N_TEST}
    assert all(t.type == "binary" for t in problem.tasks) and len(problem.tasks) == 10
    for dataset, (prefix, index) in ((problem.train, ("train", TRAIN_INDEX)), (problem.val, ("train", VAL_INDEX)),
                                     (problem.test, ("t10k", np.arange(N_TEST)))):
        images, labels = arrays[prefix]
        x, y = dataset.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.float32
        assert tuple(x.shape[1:]) == problem.input_shape and y.shape == (len(index), 10)
        np.testing.assert_array_equal(y.numpy(), np.eye(10, dtype=np.float32)[labels[index]])
        np.testing.assert_allclose(x.numpy(), images_chw(images[index]) / 255.0, atol=1e-6)
        assert 0.0 <= x.min() and x.max() <= 1.0


def test_mnist_from_idx_files(tmp_path):
    arrays = _write_mnist(tmp_path, "MNIST")
    problem = mnist(tmp_path)
    assert problem.name == "mnist" and problem.input_shape == (1, 28, 28)
    assert problem.task_names == [f"is_{d}" for d in range(10)]
    _check_one_vs_all(problem, arrays, lambda images: images[:, None])


def test_fashion_mnist_from_idx_files_with_class_names(tmp_path):
    arrays = _write_mnist(tmp_path, "FashionMNIST")
    problem = fashion_mnist(str(tmp_path))
    assert problem.name == "fashion-mnist" and problem.input_shape == (1, 28, 28)
    assert problem.task_names == ["is_t_shirt_top", "is_trouser", "is_pullover", "is_dress", "is_coat", "is_sandal",
                                  "is_shirt", "is_sneaker", "is_bag", "is_ankle_boot"]
    _check_one_vs_all(problem, arrays, lambda images: images[:, None])


# --------------------------------------------------------------------------- CIFAR-10

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _write_cifar(root):
    rng = np.random.default_rng(2)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()

    def batch(filename, n):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)  # rows are R plane, G plane, B plane
        labels = rng.integers(0, 10, size=n)
        # real batches are Python 2 pickles read with encoding="latin1", so their keys load as str
        with open(folder / filename, "wb") as f:
            pickle.dump({"data": data, "labels": [int(v) for v in labels]}, f)
        return data.reshape(n, 3, 32, 32), labels

    parts = [batch(f"data_batch_{i}", N_TRAIN // 5) for i in range(1, 6)]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = batch("test_batch", N_TEST)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_NAMES, "num_vis": 3072}, f)
    return {"train": train, "t10k": test}


def test_cifar10_from_pickled_batches(tmp_path, monkeypatch):
    # torchvision checks md5s of the batches and (separately, in _load_meta) of batches.meta; both go through
    # cifar.check_integrity, and md5 would require the real files
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", _files_exist)
    arrays = _write_cifar(tmp_path)
    problem = cifar10(tmp_path)
    assert problem.name == "cifar10" and problem.input_shape == (3, 32, 32)
    assert problem.task_names == [f"is_{c}" for c in CIFAR_NAMES]
    _check_one_vs_all(problem, arrays, lambda images: images)  # the written CHW layout comes back unchanged


# --------------------------------------------------------------------------- CelebA

CELEBA_ATTRS = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young"]
CELEBA_PARTITION = [0, 0, 1, 0, 2, 1, 0, 2]  # 4 train, 2 valid, 2 test (torchvision fails on a 1-image split)


def _write_celeba(root):
    rng = np.random.default_rng(3)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    n = len(CELEBA_PARTITION)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    colours = rng.integers(0, 256, size=(n, 3))
    attrs = rng.choice([-1, 1], size=(n, 40))
    for name, colour in zip(names, colours):  # uniform colour, so the resized pixels are known despite JPEG
        Image.new("RGB", (22, 27), tuple(int(c) for c in colour)).save(folder / "img_align_celeba" / name)

    def table(filename, rows, header=None):
        lines = ([str(n), header] if header is not None else []) + [f"{name} {row}" for name, row in zip(names, rows)]
        (folder / filename).write_text("\n".join(lines) + "\n")

    # the attribute header ends in a space, which torchvision's csv reader turns into an extra empty name
    table("list_attr_celeba.txt", [" ".join(f"{v:2d}" for v in row) for row in attrs], " ".join(CELEBA_ATTRS) + " ")
    table("list_eval_partition.txt", CELEBA_PARTITION)
    table("identity_CelebA.txt", rng.integers(1, 100, size=n))
    table("list_bbox_celeba.txt", ["1 2 3 4"] * n, "image_id x_1 y_1 width height")
    table("list_landmarks_align_celeba.txt", [" ".join(["5"] * 10)] * n, "lefteye_x lefteye_y righteye_x righteye_y "
          "nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y")
    return colours, attrs


def test_celeba_lazy_attribute_tasks(tmp_path, monkeypatch):
    # CelebA md5-checks its annotation files; md5 would require the real files
    monkeypatch.setattr(torchvision.datasets.celeba, "check_integrity", _files_exist)
    colours, attrs = _write_celeba(tmp_path)
    problem = celeba(tmp_path, image_size=16)
    assert problem.name == "celeba" and problem.input_shape == (3, 16, 16)
    assert len(problem.tasks) == 40 and all(t.type == "binary" for t in problem.tasks)
    assert problem.task_names[:3] == ["attr_5_o_clock_shadow", "arched_eyebrows", "attractive"]
    assert "male" in problem.task_names and "wearing_necktie" in problem.task_names
    assert problem.sizes() == {"train": 4, "val": 2, "test": 2}
    assert not isinstance(problem.train, torch.utils.data.TensorDataset)
    partition = np.array(CELEBA_PARTITION)
    for split, dataset in enumerate((problem.train, problem.val, problem.test)):
        for item, row in enumerate(np.flatnonzero(partition == split)):
            x, y = dataset[item]
            assert x.shape == (3, 16, 16) and x.dtype == torch.float32
            assert y.shape == (40,) and y.dtype == torch.float32
            np.testing.assert_array_equal(y.numpy(), (attrs[row] + 1) / 2)
            np.testing.assert_allclose(x.mean(dim=(1, 2)).numpy(), colours[row] / 255.0, atol=0.02)
            assert 0.0 <= x.min() and x.max() <= 1.0
    x, y = next(batches(problem.train, batch_size=3))  # the lazy dataset batches through a DataLoader
    assert x.shape == (3, 3, 16, 16) and y.shape == (3, 40)


# --------------------------------------------------------------------------- errors and registry

@pytest.mark.parametrize("name", sorted(TORCHVISION_DATASETS))
def test_missing_files_are_a_user_error(tmp_path, name):
    loader = TORCHVISION_DATASETS[name][0]
    with pytest.raises(UserError) as info:
        loader(tmp_path / "empty")
    message = info.value.worded(flag)  # as the command line shows it
    assert "\n" not in message and "not found" in message and "download=True" not in message
    assert repr(name) in message and str(tmp_path / "empty") in message and "--download" in message


def test_registry_and_names():
    assert set(TORCHVISION_DATASETS) == {"mnist", "fashion-mnist", "cifar10", "celeba"}
    for name, (loader, description) in TORCHVISION_DATASETS.items():
        assert callable(loader) and "--data-root" in description
        assert ("40 binary" if name == "celeba" else "10 one-vs-all") in description
    assert task_name("T-shirt/top", "is_") == "is_t_shirt_top"
    assert task_name("Ankle boot", "is_") == "is_ankle_boot"
    assert task_name("5_o_Clock_Shadow") == "attr_5_o_clock_shadow"
