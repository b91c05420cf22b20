"""cyclegan.data: the unpaired dataset, its transforms, determinism and error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from cyclegan.config import DataConfig
from cyclegan.contract.images import list_images
from cyclegan.contract.layout import DatasetError, read_domain_names
from cyclegan.data import ImageTransform, UnpairedImageDataset, default_num_workers, load_fixed_images


def _noise_image(path: Path, size: tuple[int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    for i in range(5):
        _noise_image(root / "trainA" / f"a{i}.png", (40 + i, 30), seed=i)
    for i in range(3):
        _noise_image(root / "trainB" / f"b{i}.jpg", (36, 48), seed=100 + i)
    for i in range(2):
        _noise_image(root / "testA" / f"ta{i}.png", (50, 40), seed=200 + i)
        _noise_image(root / "testB" / f"tb{i}.png", (40, 50), seed=300 + i)
    return root


def _cfg(root: Path, **kw) -> DataConfig:
    base = dict(root=str(root), load_size=36, crop_size=32)
    base.update(kw)
    return DataConfig(**base)


def test_items_have_shape_range_and_paths(dataset_root):
    ds = UnpairedImageDataset(dataset_root, "train", _cfg(dataset_root), seed=1)
    assert len(ds) == 5  # max(len A, len B)
    item = ds[3]
    for key in ("A", "B"):
        assert item[key].shape == (3, 32, 32)
        assert item[key].dtype == torch.float32
        assert -1.0 <= item[key].min() and item[key].max() <= 1.0
        assert item[key].min() < -0.9 and item[key].max() > 0.9  # the full range is used
    assert item["A_path"].endswith("a3.png")
    assert Path(item["B_path"]).parent.name == "trainB"


@pytest.mark.parametrize(
    "preprocess, expected",
    [
        ("resize_and_crop", (32, 32)),
        ("crop", (32, 32)),
        ("scale_width", (32, 36)),  # 42x30: width -> 36, height 36*30/42 = 26 raised to crop_size 32
        ("scale_width_and_crop", (32, 32)),
        ("scale_shorter_side_and_crop", (32, 32)),
        ("none", (32, 40)),  # 42x30 -> nearest multiples of 4 (7.5 rounds to 8): 40x32
    ],
)
def test_preprocess_modes_give_expected_sizes(dataset_root, preprocess, expected):
    cfg = _cfg(dataset_root, preprocess=preprocess)
    ds = UnpairedImageDataset(dataset_root, "train", cfg)
    a = ds[2]["A"]  # a2.png is 42x30
    assert tuple(a.shape[1:]) == expected
    assert a.shape[1] % 4 == 0 and a.shape[2] % 4 == 0


def test_scale_shorter_side_keeps_the_proportions():
    """A 2:1 frame: resize_and_crop squeezes it into a square, scale_shorter_side_and_crop keeps 2:1 and crops."""
    frame = Image.new("RGB", (96, 48), "red")
    assert ImageTransform("scale_shorter_side_and_crop", 36, 32, random=False)._resize(frame).size == (72, 36)
    assert ImageTransform("resize_and_crop", 36, 32, random=False)._resize(frame).size == (36, 36)
    assert ImageTransform("scale_shorter_side_and_crop", 48, 32, random=False)._resize(frame) is frame  # as it is


def test_squeeze_warnings_name_the_domain_and_the_fix(dataset_root):
    squeezed = UnpairedImageDataset(dataset_root, "train", _cfg(dataset_root)).validate()
    a, b = squeezed.squeeze_warnings()  # trainA is typically 42x30, trainB 36x48
    assert "the trainA images (typically 42x30) into 36x36 squares" in a and "1.40 times narrower" in a
    assert "the trainB images (typically 36x48)" in b and "1.33 times flatter" in b
    assert "data.preprocess=scale_shorter_side_and_crop keeps their proportions" in a
    kept = _cfg(dataset_root, preprocess="scale_shorter_side_and_crop")
    assert UnpairedImageDataset(dataset_root, "train", kept).validate().squeeze_warnings() == []
    for path in list_images(dataset_root / "trainA") + list_images(dataset_root / "trainB"):
        _noise_image(path, (32, 31), seed=5)  # nearly square: nothing to say
    assert UnpairedImageDataset(dataset_root, "train", _cfg(dataset_root)).validate().squeeze_warnings() == []


def test_crop_upscales_images_smaller_than_the_crop(tmp_path):
    image = Image.new("RGB", (20, 12), "red")
    out = ImageTransform("crop", 36, 32, flip=False, random=False)(image)
    assert out.shape == (3, 32, 32)


def test_random_flip_happens_about_half_the_time_and_only_when_enabled():
    ramp = Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))).convert("RGB")  # dark -> bright

    def flipped(transform: ImageTransform, seed: int) -> bool:
        out = transform(ramp, torch.Generator().manual_seed(seed))
        return bool(out[0, 0, 0] > out[0, 0, -1])

    with_flip = ImageTransform("resize_and_crop", 32, 32, flip=True, random=True)
    outcomes = [flipped(with_flip, seed) for seed in range(40)]
    assert 8 <= sum(outcomes) <= 32
    without = ImageTransform("resize_and_crop", 32, 32, flip=False, random=True)
    assert not any(flipped(without, seed) for seed in range(10))
    with pytest.raises(ValueError, match="Generator"):
        with_flip(ramp)


def test_same_seed_epoch_index_gives_identical_items_across_instances(dataset_root):
    cfg = _cfg(dataset_root)
    first, second = (
        UnpairedImageDataset(dataset_root, "train", cfg, seed=7),
        UnpairedImageDataset(dataset_root, "train", cfg, seed=7),
    )
    for ds in (first, second):
        ds.set_epoch(3)
    for i in range(len(first)):
        a, b = first[i], second[i]
        assert a["B_path"] == b["B_path"]
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])
    # Reading in another order (as shuffled or multi-worker loading does) changes nothing.
    assert torch.equal(first[4]["A"], second[4]["A"])


def test_epoch_and_seed_change_pairing_and_augmentation(dataset_root):
    cfg = _cfg(dataset_root)
    ds = UnpairedImageDataset(dataset_root, "train", cfg, seed=0)

    def snapshot():
        return [(ds[i]["B_path"], ds[i]["A"]) for i in range(len(ds))]

    epoch0 = snapshot()
    ds.set_epoch(1)
    epoch1 = snapshot()
    assert any(p0 != p1 or not torch.equal(t0, t1) for (p0, t0), (p1, t1) in zip(epoch0, epoch1))
    # Unaligned pairing: over a few epochs every B image is drawn, not only i mod len(B).
    partners = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        partners |= {ds[i]["B_path"] for i in range(len(ds))}
    assert len(partners) == 3


def test_serial_and_test_phase_pair_by_index_without_randomness(dataset_root):
    serial = UnpairedImageDataset(dataset_root, "train", _cfg(dataset_root, serial_batches=True))
    assert [Path(serial[i]["B_path"]).name for i in range(5)] == ["b0.jpg", "b1.jpg", "b2.jpg", "b0.jpg", "b1.jpg"]
    test = UnpairedImageDataset(dataset_root, "test", _cfg(dataset_root))
    test.set_epoch(0)
    first = test[1]["A"]
    test.set_epoch(9)
    assert torch.equal(first, test[1]["A"])  # centre crop, no flip


def test_num_workers_zero_and_two_give_the_same_batches(dataset_root):
    cfg = _cfg(dataset_root)

    def batches(workers: int) -> list[dict]:
        ds = UnpairedImageDataset(dataset_root, "train", cfg, seed=5)
        ds.set_epoch(2)
        return list(DataLoader(ds, batch_size=2, shuffle=False, num_workers=workers))

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 3
    for x, y in zip(serial, parallel):
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])
        assert x["B_path"] == y["B_path"]


def test_listing_is_recursive_case_insensitive_and_capped(tmp_path):
    root = tmp_path / "ds"
    _noise_image(root / "trainA" / "x" / "deep.PNG", (8, 8), 0)
    _noise_image(root / "trainA" / "upper.JPEG", (8, 8), 1)
    Image.new("RGB", (8, 8)).save(root / "trainA" / "photo.webp")
    Image.new("RGB", (8, 8)).save(root / "trainA" / "photo.bmp")
    (root / "trainA" / "notes.txt").write_text("not an image")
    (root / "trainA" / ".hidden.png").write_bytes(b"")
    names = [p.name for p in list_images(root / "trainA")]
    assert sorted(names) == ["deep.PNG", "photo.bmp", "photo.webp", "upper.JPEG"]
    _noise_image(root / "trainB" / "b.png", (8, 8), 2)
    ds = UnpairedImageDataset(root, "train", _cfg(root, max_dataset_size=2, load_size=8, crop_size=8))
    assert len(ds.paths_a) == 2 and len(ds) == 2


def test_missing_and_empty_domain_folders_name_the_folder_and_the_fix(dataset_root):
    import shutil

    shutil.rmtree(dataset_root / "trainB")
    with pytest.raises(DatasetError) as missing:
        UnpairedImageDataset(dataset_root, "train", _cfg(dataset_root))
    message = str(missing.value)
    assert str(dataset_root / "trainB") in message and "does not exist" in message
    assert "cyclegan frames" in message and "cyclegan images" in message and "--domain B" in message

    (dataset_root / "trainB").mkdir()
    (dataset_root / "trainB" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="holds no images"):
        UnpairedImageDataset(dataset_root, "train", _cfg(dataset_root))


def test_validate_names_every_unreadable_file(dataset_root):
    ds = UnpairedImageDataset(dataset_root, "train", _cfg(dataset_root))
    assert ds.validate() is ds
    broken = dataset_root / "trainB" / "b1.jpg"
    broken.write_bytes(b"this is not a jpeg")
    ds = UnpairedImageDataset(dataset_root, "train", _cfg(dataset_root))
    with pytest.raises(DatasetError) as exc:
        ds.validate()
    assert str(broken) in str(exc.value) and "1 unreadable" in str(exc.value)
    # Reading it during training also says which file.
    ds.random_pairs = False
    with pytest.raises(DatasetError, match="b1.jpg"):
        ds[1]


def test_default_num_workers_leaves_a_core_for_training():
    assert default_num_workers(1) == 0
    assert default_num_workers(2) == 1
    assert default_num_workers(3) == 2
    assert default_num_workers(64) == 4
    assert 0 <= default_num_workers() <= 4


def test_load_fixed_images_uses_test_then_train(dataset_root):
    fixed = load_fixed_images(dataset_root, "A", 4, 24)
    assert fixed.shape == (2, 3, 24, 24)  # only 2 test images
    # ta0.png (50x40) -> shorter side 24 (30x24) -> centre 24x24 (columns 3..26).
    expected = np.asarray(Image.open(dataset_root / "testA" / "ta0.png").resize((30, 24), Image.BICUBIC))[:, 3:27]
    got = ((fixed[0].permute(1, 2, 0) + 1) * 127.5).round().numpy()
    assert np.abs(got - expected).max() <= 1
    assert torch.equal(fixed, load_fixed_images(dataset_root, "A", 4, 24))
    assert load_fixed_images(dataset_root, "B", 0, 16).shape == (0, 3, 16, 16)
    import shutil

    shutil.rmtree(dataset_root / "testB")
    assert load_fixed_images(dataset_root, "B", 2, 16).shape == (2, 3, 16, 16)  # from trainB
    shutil.rmtree(dataset_root / "trainB")
    with pytest.raises(DatasetError, match="testB"):
        load_fixed_images(dataset_root, "B", 2, 16)


def test_read_domain_names(tmp_path):
    assert read_domain_names(tmp_path) == {"A": "A", "B": "B"}
    (tmp_path / "dataset.json").write_text(json.dumps({"domains": {"B": "cartoon"}}))
    assert read_domain_names(tmp_path) == {"A": "A", "B": "cartoon"}
    (tmp_path / "dataset.json").write_text("{broken")
    with pytest.raises(DatasetError, match="dataset.json"):
        read_domain_names(tmp_path)
