"""MNIST, Fashion-MNIST, CIFAR-10/100 read from local files: the IDX files (plain or .gz) by a reader
of the format here, the CIFAR python batches (pickles) through a restricted unpickler that admits
only the containers and numpy arrays of the format, so a tampered file cannot run code. Every file's
labels are checked against its images (as many, each a class of the dataset): a file that does not
fit is named, not misaligned or dropped.

Inputs are standardised with statistics of the training split (per channel). Files are never
fetched unless `dataset.download=true`; when they are missing the error says where they go.
"""

from __future__ import annotations

import gzip
import os
import pickle
import zlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..core.checks import check
from ..core.config_base import DatasetConfig, config_schema
from ..core.errors import DatasetFilesMissing, DatasetFileUnreadable
from ..core.writable import directory_problem
from . import DATASETS
from .splits import RawData


@config_schema("dataset", "vision")
@dataclass
class VisionConfig(DatasetConfig):
    root: str = "data"
    download: bool = False
    path_options: ClassVar[tuple[str, ...]] = ("root",)  # DatasetConfig.path_options
    data_options: ClassVar[tuple[str, ...]] = ("root",)  # DatasetConfig.data_options: the files are the data

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        d = OmegaConf.select(cfg, key)
        if not d.download and d.name in SOURCES:
            check_files(d.name, d.root)  # missing files stop the run before any directory exists
        _check_download_root(cfg, key)

    @staticmethod
    def check_writes(cfg: DictConfig, key: str) -> None:
        _check_download_root(cfg, key, try_create=True)  # as root, /proc passed `check` (os.access says yes)

    @classmethod
    def declared_input(cls, node):
        source = SOURCES.get(node.name)
        return (source.input_shape, source.num_classes) if source else None

    @classmethod
    def declared_train_examples(cls, node):
        """The training images of the folder's IDX file where it can be read (its header's first dimension: the
        run reads this very file before it starts), else the published size, an upper bound. The published
        size alone let `dataset.max_train_samples=500` do nothing on a 200-image folder and refused 60005 on a
        60010-image one as "at most 60000". CIFAR's batches are pickles, whose count costs their whole decoding:
        the published size stays (the extracted archive holds exactly that)."""
        source = SOURCES.get(node.name)
        if source is None:
            return None
        if "idx" in source.files[0]:
            counted = idx_length(os.path.join(os.path.expanduser(node.root), source.folder, source.files[0]))
            if counted is not None:
                return counted, None
        return source.train_examples, None

    @classmethod
    def declared_total_counted(cls, node):
        source = SOURCES.get(node.name)
        if source is None or "idx" not in source.files[0]:
            return False
        return idx_length(os.path.join(os.path.expanduser(node.root), source.folder, source.files[0])) is not None

    @classmethod
    def source_files(cls, node):
        """The files `_read_split` reads (DatasetConfig.source_files): each of the source's files, plain or,
        for an IDX file without its plain name, as .gz, as `read_idx` picks them."""
        source = SOURCES.get(node.name)
        if source is None:
            return {}
        folder, found = os.path.join(os.path.expanduser(node.root), source.folder), {}
        for f in source.files:
            name = next((n for n in (f, f + ".gz") if os.path.exists(os.path.join(folder, n))), None)
            if name is not None and (name == f or "idx" in f):
                found[f"{source.folder}/{name}"] = os.path.join(folder, name)
        return found


def _check_download_root(cfg: DictConfig, key: str, try_create: bool = False) -> None:
    """With `download=true` and files missing, `dataset.root` is where torchvision writes them: a directory
    prune-run can write or create (prune_cli/core/writable.py), checked before the run starts, as
    results_dir is (an unwritable root failed in the download, after the run directory existed). Files that
    are all there are only read. `try_create`: tried by making and removing an empty directory there."""
    d = OmegaConf.select(cfg, key)
    if not d.download or d.name not in SOURCES:
        return
    folder = os.path.join(os.path.expanduser(d.root), SOURCES[d.name].folder)
    if all(_present(folder, f) for f in SOURCES[d.name].files):
        return
    value = d.root
    problem = directory_problem(value, try_create) if isinstance(value, str) and value.strip() else "it is empty"
    check(
        problem is None,
        f"{key}.root",
        value,
        "a directory prune-run can write or create when dataset.download=true fetches missing files into it",
        f"Here {problem}." if problem else "",
    )


@dataclass(frozen=True)
class VisionSource:
    label: str
    folder: str  # relative to dataset.root, as torchvision lays it out
    files: tuple[str, ...]
    num_classes: int
    url_hint: str
    input_shape: tuple[int, ...] = (1, 28, 28)  # channels, height, width of one image
    train_examples: int = 60000  # the published training split's size


SOURCES = {
    "mnist": VisionSource(
        "MNIST",
        "MNIST/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        10,
        "the four IDX files of yann.lecun.com/exdb/mnist (optionally .gz)",
    ),
    "fashion_mnist": VisionSource(
        "Fashion-MNIST",
        "FashionMNIST/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        10,
        "the four IDX files of github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": VisionSource(
        "CIFAR-10",
        "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"),
        10,
        "the extracted cifar-10-python.tar.gz",
        (3, 32, 32),
        50000,
    ),
    "cifar100": VisionSource(
        "CIFAR-100", "cifar-100-python", ("train", "test", "meta"), 100, "the extracted cifar-100-python.tar.gz", (3, 32, 32), 50000
    ),
}


def _present(folder: str, name: str) -> bool:
    """The file is there; an IDX file (no CIFAR batch) also as .gz, which `read_idx` reads."""
    plain = os.path.exists(os.path.join(folder, name))
    return plain or ("idx" in name and os.path.exists(os.path.join(folder, name + ".gz")))


def check_files(name: str, root: str) -> None:
    src = SOURCES[name]
    folder = os.path.join(os.path.expanduser(root), src.folder)
    missing = [f for f in src.files if not _present(folder, f)]
    if missing and os.path.isdir(folder) and not os.access(folder, os.R_OK | os.X_OK):
        raise DatasetFileUnreadable(  # os.path.exists answers False for every file of a folder one cannot search
            f"{folder} cannot be read (no read or search permission) for dataset.root={root!r}: its {src.label} files "
            "cannot be looked up. Give read access to it, or copy the files to a dataset.root you can read."
        )
    if missing:
        raise DatasetFilesMissing(
            f"{src.label} files not found for dataset.root={root!r}: missing {', '.join(missing)} in "
            f"{folder}. Put {src.url_hint} there, or pass dataset.download=true on a machine with "
            f"network access."
        )


class _CifarUnpickler(pickle.Unpickler):
    """CIFAR batches are Python pickles, and unpickling runs whatever a file names: only the
    containers and numpy arrays the format uses are admitted; anything else is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("builtins", "object"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not part of the CIFAR format")
        return super().find_class(module, name)


def read_cifar_file(path: str) -> dict:
    """One CIFAR batch/meta file through the restricted unpickler; any failure names the file."""
    try:
        with open(path, "rb") as f:
            out = _CifarUnpickler(f, encoding="latin1").load()
    except Exception as err:  # noqa: BLE001 - truncated, foreign or malicious: the message names the file
        raise DatasetFileUnreadable(
            f"cannot read {path} as a CIFAR python batch ({type(err).__name__}: {err}). "
            f"Replace it with the file from the extracted archive."
        ) from None
    if not isinstance(out, dict):
        raise DatasetFileUnreadable(f"cannot read {path} as a CIFAR python batch: it holds a {type(out).__name__}, not a dict")
    return out


def _cifar_files(name: str, train: bool) -> list[str]:
    """The batch files of one CIFAR split (not the meta file), in the order they are read."""
    return [f for f in SOURCES[name].files if f not in ("batches.meta", "meta") and (f not in ("test_batch", "test")) == train]


def _read_cifar(name: str, root: str, train: bool) -> tuple[np.ndarray, list]:
    """(images N x 32 x 32 x 3 uint8, labels) of one CIFAR split, as torchvision lays them out."""
    src = SOURCES[name]
    folder = os.path.join(root, src.folder)
    files = _cifar_files(name, train)
    label_key = "labels" if name == "cifar10" else "fine_labels"
    images, labels = [], []
    for f in files:
        path = os.path.join(folder, f)
        entry = read_cifar_file(path)
        if "data" not in entry or label_key not in entry:
            raise DatasetFileUnreadable(f"{path} has no 'data' and '{label_key}' entries: not a {src.label} batch")
        data = np.asarray(entry["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetFileUnreadable(
                f"{path}: 'data' is {data.dtype} of shape {data.shape}, not uint8 rows of 3 x 32 x 32 = 3072 bytes"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels += list(_fitting_labels(path, entry[label_key], len(data), src.num_classes))
    return np.vstack(images).transpose(0, 2, 3, 1), labels


def _check_cifar_meta(name: str, folder: str) -> None:
    """The meta file names the dataset's classes (CIFAR-10: 10 `label_names`; CIFAR-100: 100
    `fine_label_names`): a broken one, or the other dataset's, means the folder holds something else."""
    src = SOURCES[name]
    meta = "batches.meta" if name == "cifar10" else "meta"
    path = os.path.join(folder, meta)
    key = "label_names" if name == "cifar10" else "fine_label_names"
    names = read_cifar_file(path).get(key)
    if not isinstance(names, list) or len(names) != src.num_classes:
        got = f"{len(names)} {key}" if isinstance(names, list) else f"no '{key}' list"
        raise DatasetFileUnreadable(
            f"{path}: {got}, not the {src.num_classes} classes of {src.label}; replace it with the file of {src.url_hint}"
        )


def _fitting_labels(path: str, labels, images: int, num_classes: int) -> np.ndarray:
    """The labels of a file, one per image and each a class (0..num_classes - 1); otherwise the file
    is named (a short label list misaligned every later image, an unknown class dropped it)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:  # nested lists flattened would pair images with other images' labels
        raise DatasetFileUnreadable(
            f"{path}: labels of shape {labels.shape}, not one label per image; replace it with the original file"
        )
    if len(labels) != images:
        raise DatasetFileUnreadable(f"{path}: {len(labels)} labels for {images} images; replace it with the original file")
    bad = labels[(labels < 0) | (labels >= num_classes)] if np.issubdtype(labels.dtype, np.integer) else labels
    if len(bad):
        first = bad[0].item() if hasattr(bad[0], "item") else bad[0]
        raise DatasetFileUnreadable(
            f"{path}: label {first!r} is not a class (0..{num_classes - 1}); replace it with the original file"
        )
    return labels.astype(np.int64)  # a copy: IDX labels are a read-only view of the file's bytes


def idx_length(path: str) -> int | None:
    """The first dimension an IDX file's header declares (plain, or `path.gz` as `read_idx` picks it), read from
    its first bytes only; None when the file is absent or its header is not an IDX header of unsigned bytes
    (loading it then says why)."""
    actual = path if os.path.exists(path) else path + ".gz"
    try:
        with (gzip.open if actual.endswith(".gz") else open)(actual, "rb") as f:
            head = f.read(8)
    except (OSError, EOFError, zlib.error):
        return None
    if len(head) < 8 or head[:3] != b"\x00\x00\x08" or head[3] < 1:
        return None
    return int.from_bytes(head[4:8], "big")


def read_idx(path: str) -> np.ndarray:
    """An IDX file of unsigned bytes (the MNIST format: zero bytes, type 0x08, the number of
    dimensions, their big-endian sizes, then the data), read from `path` or `path.gz`."""
    actual = path if os.path.exists(path) else path + ".gz"
    try:
        with (gzip.open if actual.endswith(".gz") else open)(actual, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip: BadGzipFile, a truncated stream (EOFError), damaged data
        raise DatasetFileUnreadable(
            f"cannot read {actual} ({type(err).__name__}: {err}). Replace it with the original file."
        ) from None
    if not raw:
        raise DatasetFileUnreadable(f"{actual} is empty (0 bytes), not an IDX file. Replace it with the original file.")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetFileUnreadable(f"{actual} is not an IDX file of unsigned bytes (its header is {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DatasetFileUnreadable(
            f"{actual} is truncated: its header declares {ndim} dimensions ({4 + 4 * ndim} header bytes) but the file "
            f"ends after {len(raw)} bytes. Replace it with the original file."
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)):
        raise DatasetFileUnreadable(
            f"{actual} declares {dims} ({int(np.prod(dims))} bytes) but holds {len(body)}: truncated or foreign"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


class _Split:
    def __init__(self, data, targets):
        self.data, self.targets = data, targets


def _download(name: str, root: str, train: bool) -> None:
    from torchvision import datasets
    from torchvision.datasets.utils import download_and_extract_archive

    target = os.path.abspath(os.path.join(root, SOURCES[name].folder))
    created = _missing_folders(target)
    try:
        if name.startswith("cifar"):
            cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
            download_and_extract_archive(cls.url, root, filename=cls.filename, md5=cls.tgz_md5)
        else:
            {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}[name](root, train=train, download=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; torchvision raises RuntimeError when every mirror fails
        _remove_empty_folders(target, created)
        raise DatasetFilesMissing(
            f"dataset.download=true could not fetch {SOURCES[name].label} into {os.path.join(root, SOURCES[name].folder)} "
            f"(dataset.root={root!r}): the download failed ({type(err).__name__}: {_first_reason(err)}). "
            f"Put {SOURCES[name].url_hint} there by hand, or download on a machine with network access. "
            f"Partial files of the failed download may be left under {root}."
        ) from None


def _missing_folders(path: str) -> list[str]:
    """The folders of `path` (it included) that do not exist yet, deepest first: what a download into `path`
    creates, and the only folders `_remove_empty_folders` may remove when it fails (a run without network left
    an empty dataset.root behind, the only trace of a run that did nothing)."""
    path, missing = os.path.abspath(path), []
    while not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove_empty_folders(target: str, created: list[str]) -> None:
    """After a failed download into `target`: remove the folders it created (`created`, `_missing_folders` taken
    before it ran) that are empty now, and the empty folders torchvision made under `target`, deepest first, by
    os.rmdir alone. Never a file, nor a folder holding one: another run sharing a dataset.root that did not exist
    (a sweep over dataset=mnist,cifar10, two seeds in parallel) may have downloaded into the same folders
    meanwhile, and removing the whole tree deleted its completed files. Partial files of the failed download stay."""
    if not created:
        return
    below = [folder for folder, _, _ in os.walk(target, topdown=False)] if os.path.isdir(target) else []
    for folder in below + [c for c in created if c != target]:
        try:
            os.rmdir(folder)
        except OSError:  # not empty (a file another run or the download wrote), or already gone
            pass


def _first_reason(err: Exception) -> str:
    """One line of a download error: torchvision's MNIST raises one RuntimeError listing every mirror
    ("Error downloading <file>:", then "Tried <mirror>, got:" and its reason, for each); only the
    first mirror and its reason are kept. Any other error: its first non-empty line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if len(lines) >= 3 and lines[0].startswith("Error downloading") and lines[1].startswith("Tried "):
        mirror = lines[1].removeprefix("Tried ").removesuffix(", got:")
        return f"{lines[0].rstrip(':')} from {mirror}: {lines[2]}"
    return lines[0] if lines else repr(err)


def _read_split(name: str, root: str, train: bool, download: bool):
    """The split as (data, targets): CIFAR through the restricted reader, MNIST-style IDX files
    through `read_idx` (they are raw arrays, not pickles). With download=true, missing files are
    fetched by torchvision first; a failed download is named (not a urllib traceback)."""
    folder = os.path.join(root, SOURCES[name].folder)
    if download and not all(_present(folder, f) for f in SOURCES[name].files):
        _download(name, root, train)
    if name.startswith("cifar"):
        if train:
            _check_cifar_meta(name, folder)
        split = _Split(*_read_cifar(name, root, train))
        if len(split.data) == 0:
            files = _cifar_files(name, train)
            raise DatasetFileUnreadable(
                f"{', '.join(os.path.join(folder, f) for f in files)} hold 0 images: the {'training' if train else 'test'} "
                "split would be empty. Replace them with the files of the extracted archive."
            )
        return split
    stem = "train" if train else "t10k"
    image_path = os.path.join(folder, f"{stem}-images-idx3-ubyte")
    images = read_idx(image_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetFileUnreadable(f"{image_path}: images of shape {images.shape[1:]}, not 28 x 28")
    if len(images) == 0:  # training crashed on it, an empty test split failed only after dense training
        raise DatasetFileUnreadable(
            f"{image_path} holds 0 images: the {'training' if train else 'test'} split would be empty. "
            "Replace it with the original file."
        )
    label_path = os.path.join(folder, f"{stem}-labels-idx1-ubyte")
    labels = read_idx(label_path)
    if labels.ndim != 1:  # (40, 1) or (4, 10) was flattened into 40 labels and accepted
        raise DatasetFileUnreadable(
            f"{label_path}: {labels.ndim} dimensions {list(labels.shape)}, not one label per image (an IDX labels "
            "file has exactly one dimension). Replace it with the original file."
        )
    labels = _fitting_labels(label_path, labels, len(images), SOURCES[name].num_classes)
    return _Split(torch.from_numpy(images.copy()), labels)


def _to_tensors(ds, image_layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    x = data.float().div_(255.0)
    x = x.unsqueeze(1) if image_layout == "NHW" else x.permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
    return x, y


def _standardise(train_x: torch.Tensor, test_x: torch.Tensor):
    dims = (0, 2, 3)
    mean = train_x.mean(dim=dims, keepdim=True)
    std = train_x.std(dim=dims, keepdim=True).clamp_min(1e-8)
    return (train_x - mean) / std, (test_x - mean) / std


def load_vision(name: str, cfg: DictConfig) -> RawData:
    if not cfg.download:
        check_files(name, cfg.root)
    root = os.path.expanduser(cfg.root)
    layout = "NHW" if "mnist" in name else "NHWC"
    train_x, train_y = _to_tensors(_read_split(name, root, True, cfg.download), layout)
    test_x, test_y = _to_tensors(_read_split(name, root, False, cfg.download), layout)
    train_x, test_x = _standardise(train_x, test_x)
    return RawData(train_x, train_y, test_x, test_y, SOURCES[name].num_classes, image=True)


@DATASETS.register("mnist", "fashion_mnist", "cifar10", "cifar100")  # the keys of SOURCES
def load_registered_vision(cfg: DictConfig) -> RawData:
    return load_vision(cfg.name, cfg)
