"""Dataset readers on miniature trees laid out like the real downloads, written with our
spec-exact writers: labels, splits, segment cutting and framed shapes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import events
from events import FramingSpec
from events.aedat2 import write_aedat2
from events.aedat3 import write_aedat3
from events.aedat4 import write_aedat4
from events.numpy_files import write_npz
from models.datasets import DATASETS
from models.datasets.cifar10dvs import CLASSES as CIFAR_CLASSES
from models.datasets.dvsgesture import CLASSES as GESTURES

SPEC = FramingSpec(time_steps=4, width=32, height=32)


def random_events(n: int, width: int, height: int, seed: int, duration_us: int = 3_000_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_us, n))
    return events.make_events(t, rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n))


SEGMENTS = [(1, 100_000, 900_000), (5, 1_000_000, 1_800_000), (11, 2_000_000, 2_900_000)]


@pytest.fixture
def gesture_root(tmp_path):
    folder = tmp_path / "DvsGesture"
    folder.mkdir()
    recordings = {}
    for seed, name in enumerate(["user01_fluorescent", "user01_led", "user24_lab"]):
        recordings[name] = random_events(6_000, 128, 128, seed)
        write_aedat3(folder / f"{name}.aedat", recordings[name], (128, 128), packet_events=1_000)
        rows = "".join(f"{c},{s},{e}\n" for c, s, e in SEGMENTS)
        (folder / f"{name}_labels.csv").write_text("class,startTime_usec,endTime_usec\n" + rows)
    (folder / "trials_to_train.txt").write_text("user01_fluorescent.aedat\nuser01_led.aedat\n")
    (folder / "trials_to_test.txt").write_text("user24_lab.aedat\n")
    return tmp_path, recordings


def test_dvsgesture_cuts_each_labelled_segment(gesture_root):
    root, recordings = gesture_root
    train = DATASETS["dvsgesture"](root, "train", SPEC)
    test = DATASETS["dvsgesture"](root, "test", SPEC)
    assert (len(train), len(test)) == (6, 3)
    assert train.classes[0] == "hand_clapping" and train.classes[10] == "other_gestures" and len(GESTURES) == 11
    assert [s.label for s in test.samples] == [0, 4, 10]
    assert train.sensor_size == (128, 128)
    ev = recordings["user24_lab"]
    for sample, (_, start, end) in zip(test.samples, SEGMENTS, strict=True):
        expected = ev[(ev["t"] >= start) & (ev["t"] < end)]
        assert np.array_equal(sample.events(), expected)
    frames, label = test[1]
    assert tuple(frames.shape) == (4, 2, 32, 32) and label == 4
    assert int(frames.sum()) == int(((ev["t"] >= 1_000_000) & (ev["t"] < 1_800_000)).sum())


def test_dvsgesture_rejects_a_bad_class_and_missing_trials(gesture_root, tmp_path):
    root, _ = gesture_root
    (root / "DvsGesture" / "user24_lab_labels.csv").write_text("class,startTime_usec,endTime_usec\n12,0,10\n")
    with pytest.raises(ValueError, match="class 12"):
        DATASETS["dvsgesture"](root, "test", SPEC)
    with pytest.raises(FileNotFoundError):
        DATASETS["dvsgesture"](tmp_path / "elsewhere", "train", SPEC)


def test_nmnist_reads_digit_folders(tmp_path):
    from events import nmnist

    for split, per_digit in (("Train", 2), ("Test", 1)):
        for digit in range(10):
            folder = tmp_path / split / str(digit)
            folder.mkdir(parents=True)
            for i in range(per_digit):
                nmnist.write_nmnist(folder / f"{i:05d}.bin", random_events(300, 34, 34, digit * 10 + i, 300_000))
    train = DATASETS["nmnist"](tmp_path, "train", SPEC)
    test = DATASETS["nmnist"](tmp_path, "test", SPEC)
    assert (len(train), len(test)) == (20, 10) and train.sensor_size == (34, 34)
    assert [s.label for s in test.samples] == list(range(10))
    assert np.array_equal(train.samples[3].events(), random_events(300, 34, 34, 11, 300_000))
    assert tuple(test[0][0].shape) == (4, 2, 32, 32)


@pytest.fixture
def cifar_root(tmp_path):
    for label, name in enumerate(CIFAR_CLASSES):
        folder = tmp_path / name
        folder.mkdir()
        count = 10 if name == "cat" else 2
        for i in range(count):
            ev = random_events(200, 128, 128, label * 100 + i, 1_000_000)
            if i % 2:
                write_aedat4(folder / f"cifar10_{name}_{i}.aedat4", ev, (128, 128), "lz4")
            else:
                write_aedat2(folder / f"cifar10_{name}_{i}.aedat", ev, None, chip=None)  # originals name no chip
    return tmp_path


def test_cifar10dvs_split_is_the_first_90_percent_in_natural_order(cifar_root):
    train = DATASETS["cifar10dvs"](cifar_root, "train", SPEC)
    test = DATASETS["cifar10dvs"](cifar_root, "test", SPEC)
    assert (len(train), len(test)) == (18, 10)  # cat: 9 + 1 of 10 files; the others: 1 + 1 of 2
    cat = [s.source for s in train.samples if s.label == 3]
    assert cat == [f"cat/cifar10_cat_{i}.aedat" + ("4" if i % 2 else "") for i in range(9)]
    assert [s.source for s in test.samples if s.label == 3] == ["cat/cifar10_cat_9.aedat4"]
    assert train.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    first = train.samples[0]
    assert first.source == "airplane/cifar10_airplane_0.aedat"
    assert np.array_equal(first.events(), random_events(200, 128, 128, 0, 1_000_000))
    frames, label = test[len(test) - 1]
    assert tuple(frames.shape) == (4, 2, 32, 32) and label == 9 and int(frames.sum()) == 200
    half = DATASETS["cifar10dvs"](cifar_root, "train", SPEC, train_fraction=0.5)
    assert sum(s.label == 3 for s in half.samples) == 5


@pytest.fixture
def npz_root(tmp_path):
    for split, count in (("train", 3), ("test", 1)):
        for label, name in enumerate(["bird", "airplane"] if split == "train" else ["airplane", "bird", "zebra"]):
            folder = tmp_path / "events_np" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                write_npz(folder / f"{i}.npz", random_events(100, 100, 90, label * 10 + i, 50_000))
    return tmp_path


def test_npz_cache_labels_agree_between_splits(npz_root):
    train = DATASETS["npz"](npz_root, "train", SPEC)
    test = DATASETS["npz"](npz_root, "test", SPEC)
    assert train.classes == test.classes == ["airplane", "bird", "zebra"]
    assert [s.label for s in train.samples] == [0, 0, 0, 1, 1, 1]
    assert [s.label for s in test.samples] == [0, 1, 2]
    assert train.sensor_size == (128, 128)  # events up to 99 x 89: the smallest usual sensor holding them
    assert DATASETS["npz"](npz_root, "test", SPEC, sensor_size=(100, 90)).sensor_size == (100, 90)
    assert np.array_equal(train.samples[3].events(), random_events(100, 100, 90, 0, 50_000))
    assert tuple(test[2][0].shape) == (4, 2, 32, 32)


def test_sample_loaders_pickle_for_dataloader_workers(gesture_root, npz_root, cifar_root):
    for dataset in (
        DATASETS["dvsgesture"](gesture_root[0], "train", SPEC),
        DATASETS["npz"](npz_root, "train", SPEC),
        DATASETS["cifar10dvs"](cifar_root, "test", SPEC),
    ):
        loader = pickle.loads(pickle.dumps(dataset.samples[0].events))
        assert np.array_equal(loader(), dataset.samples[0].events())


def test_unknown_split_is_refused(npz_root):
    with pytest.raises(ValueError, match="split"):
        DATASETS["npz"](npz_root, "validation", SPEC)
