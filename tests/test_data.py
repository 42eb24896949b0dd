import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch
from realdata import data_dir

from xorsnn.data import (
    ArrayLoader,
    BatchAugment,
    DatasetError,
    ImageArrays,
    events_to_frames,
    load_dataset,
    random_crop,
    random_hflip,
    read_idx,
    split_per_class,
)
from xorsnn.data.download import download_file, md5sum


def test_digits_split_is_deterministic_and_stratified():
    pytest.importorskip("sklearn")
    a, b = load_dataset("digits"), load_dataset("digits")
    assert len(a.train) == 1438 and len(a.test) == 359
    assert a.train.images.shape[1:] == (1, 8, 8) and a.train.images.dtype == torch.uint8
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    counts = torch.bincount(a.test.labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 37  # 20 % of each class
    assert int(a.train.labels.max()) == 9 and int(a.train.images.max()) == 255


def test_fashion_mnist_real_files():
    root = data_dir("fashion_mnist")
    b = load_dataset("fashion_mnist", root)
    assert b.train.images.shape == (60000, 1, 28, 28) and b.test.images.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(b.train.labels), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(b.test.labels), torch.full((10,), 1000))
    mean = b.train.images.float().mean() / 255
    assert abs(mean.item() - 0.2860) < 1e-3 and b.info.num_classes == 10


def test_cifar10_real_files():
    root = data_dir("cifar10")
    b = load_dataset("cifar10", root)
    assert b.train.images.shape == (50000, 3, 32, 32) and b.test.images.shape == (10000, 3, 32, 32)
    assert torch.equal(torch.bincount(b.train.labels), torch.full((10,), 5000))
    assert torch.equal(torch.bincount(b.test.labels), torch.full((10,), 1000))
    means = b.train.images.float().mean((0, 2, 3)) / 255
    torch.testing.assert_close(means, torch.tensor([0.4913, 0.4821, 0.4465]), atol=2e-3, rtol=0)


def test_idx_reads_uncompressed_files_too(tmp_path):
    root = data_dir("fashion_mnist")
    src = root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(src.read_bytes()))
    assert np.array_equal(read_idx(raw), read_idx(src))


def _copy_fmnist(tmp_path):
    root = data_dir("fashion_mnist")
    dst = tmp_path / "FashionMNIST" / "raw"
    shutil.copytree(root / "FashionMNIST" / "raw", dst)
    return tmp_path, dst


def test_corrupt_and_missing_fashion_mnist_files_are_named(tmp_path):
    root, raw = _copy_fmnist(tmp_path)
    path = raw / "t10k-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[: len(data) // 2]))  # truncated payload
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz.*(truncated|corrupt).*--download"):
        load_dataset("fashion_mnist", root)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("fashion_mnist", root)
    path.unlink()
    with pytest.raises(DatasetError, match="missing file .*t10k-images-idx3-ubyte.gz.*--download"):
        load_dataset("fashion_mnist", root)


def test_corrupt_cifar_batch_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 255, (10000, 3072), dtype=np.uint8),
                         "labels": list(rng.integers(0, 10, 10000))}, f)
    assert len(load_dataset("cifar10", tmp_path).train) == 50000
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:1000])
    with pytest.raises(DatasetError, match="data_batch_3.*corrupt"):
        load_dataset("cifar10", tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({"data": rng.integers(0, 255, (10000, 3072), dtype=np.uint8), "labels": [11] * 10000}, f)
    with pytest.raises(DatasetError, match=r"data_batch_3: labels .*\[0, 9\]"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DatasetError, match="missing file .*cifar-100-python"):
        load_dataset("cifar100", tmp_path)


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(ValueError, match="valid datasets"):
        load_dataset("mnist3d", "/tmp")


def test_random_crop_is_a_window_of_the_padded_image():
    x = torch.rand(16, 2, 5, 6)
    g = torch.Generator().manual_seed(3)
    out = random_crop(x, 2, g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        assert any(torch.equal(out[i], padded[i, :, dy:dy + 5, dx:dx + 6]) for dy in range(5) for dx in range(5))
    assert torch.equal(random_crop(x, 0, g), x)


def test_random_flip_and_augment_pipeline():
    x = torch.rand(64, 3, 4, 4)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and 10 < sum(flipped) < 54
    aug = BatchAugment((0.5,), (0.25,))
    u8 = torch.full((2, 1, 3, 3), 255, dtype=torch.uint8)
    assert torch.allclose(aug(u8, train=False), torch.full((2, 1, 3, 3), 2.0))


def _arrays(n):
    return ImageArrays(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1), torch.arange(n))


def test_array_loader_epochs_and_shards():
    aug = BatchAugment((0.0,), (1 / 255,))
    single = ArrayLoader(_arrays(10), 3, aug, train=True, seed=1)
    single.set_epoch(0)
    e0 = torch.cat([y for _, y in single])
    assert len(e0) == 9 and len(set(e0.tolist())) == 9  # drop_last, no repeats
    single.set_epoch(0)
    assert torch.equal(torch.cat([y for _, y in single]), e0)
    single.set_epoch(1)
    assert not torch.equal(torch.cat([y for _, y in single]), e0)
    shards = []
    for rank in range(2):
        ld = ArrayLoader(_arrays(11), 2, aug, train=True, seed=1, rank=rank, world_size=2)
        ld.set_epoch(4)
        shards.append(torch.cat([y for _, y in ld]))
    assert len(shards[0]) == len(shards[1]) == 6
    evals = [torch.cat([y for _, y in ArrayLoader(_arrays(11), 4, aug, train=False, rank=r, world_size=2)])
             for r in range(2)]
    assert sorted(torch.cat(evals).tolist()) == list(range(11))
    x, _ = next(iter(ArrayLoader(_arrays(4), 4, aug, train=False)))
    assert torch.allclose(x.flatten(), torch.arange(4.0))


def test_events_to_frames_by_number_and_time():
    ev = np.zeros(6, dtype=[("x", "i4"), ("y", "i4"), ("p", "i4"), ("t", "i8")])
    ev["x"] = [0, 1, 1, 2, 2, 2]
    ev["y"] = [0, 0, 0, 1, 1, 1]
    ev["p"] = [1, 0, 1, 1, 1, 0]
    ev["t"] = [0, 1, 2, 3, 100, 101]
    f = events_to_frames(ev, 3, (3, 2), "number")  # 2 events per frame
    assert f.shape == (3, 2, 2, 3) and f.sum() == 6
    assert f[0, 1, 0, 0] == 1 and f[0, 0, 0, 1] == 1 and f[1, 1, 0, 1] == 1 and f[1, 1, 1, 2] == 1
    assert f[2, 1, 1, 2] == 1 and f[2, 0, 1, 2] == 1
    ft = events_to_frames(ev, 2, (3, 2), "time")  # [0, 50.5) and [50.5, 101]
    assert ft[0].sum() == 4 and ft[1].sum() == 2
    tr, te = split_per_class(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]), 0.75)
    assert te.tolist() == [3, 12, 13] and len(tr) == 11


def test_pillow_image_folder(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    for split in ("train", "val"):
        for c, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(3):
                pil.new("RGB", (40 + i, 30), color).save(d / f"{i}.png")
    b = load_dataset("imagefolder", tmp_path, image_size=16, backend="pillow")
    assert b.info.num_classes == 2 and len(b.train) == 6
    x, y = b.test[0]
    assert x.shape == (3, 16, 16) and y == 0
    assert x[0].mean() > x[2].mean()  # red image


def test_download_checks_md5_of_fetched_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"spikes" * 1000)
    good = md5sum(src)
    dest = download_file(src.as_uri(), tmp_path / "out" / "a.bin", good, progress=False)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(OSError, match="checksum mismatch"):
        download_file(src.as_uri(), tmp_path / "out" / "b.bin", "0" * 32, progress=False)
    assert not (tmp_path / "out" / "b.bin").exists()
    assert not list((tmp_path / "out").glob(".*part"))
