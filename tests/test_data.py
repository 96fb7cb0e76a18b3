"""Tests for autograder.data: offline loading of Fashion-MNIST and CIFAR-10.

Everything runs on tiny files generated in tmp_path; nothing is downloaded
(the download paths are exercised with Gluon's dataset classes replaced).
"""
import gzip
import os
import sys

import matplotlib

matplotlib.use('Agg')  # d2l.train_ch6 plots; graders have no display

import numpy as onp  # noqa: E402
import pytest  # noqa: E402
from d2l import mxnet as d2l  # noqa: E402
from mxnet import gluon, nd, npx  # noqa: E402
from mxnet import np as mnp  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from autograder.student import data  # noqa: E402


@pytest.fixture(params=[True, False], ids=['np-mode', 'legacy-mode'])
def np_mode(request):
    """Run a test under npx.set_np() (as the notebooks do) and without."""
    if request.param:
        npx.set_np()
    else:
        npx.reset_np()
    yield request.param
    npx.reset_np()


@pytest.fixture
def np_only():
    """Run a test under npx.set_np() only, as the notebooks do."""
    npx.set_np()
    yield
    npx.reset_np()


@pytest.fixture(autouse=True)
def no_env_folder(monkeypatch):
    """Keep a RESNET_DATA_DIR set outside the tests from leaking in."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


def collect(loader):
    """Concatenate all batches of a loader into numpy (images, labels)."""
    images, labels = zip(*((X.asnumpy(), y.asnumpy()) for X, y in loader))
    return onp.concatenate(images), onp.concatenate(labels)


def check_batches(loader, np_mode, image_shape):
    """Check every batch's array type, dtypes, shape and value range."""
    array_type = mnp.ndarray if np_mode else nd.NDArray
    for X, y in loader:
        assert isinstance(X, array_type) and isinstance(y, array_type)
        assert X.dtype == onp.float32
        assert onp.issubdtype(y.dtype, onp.integer)
        assert X.shape[1:] == image_shape and y.shape == X.shape[:1]
        values = X.asnumpy()
        assert values.min() >= 0 and values.max() <= 1


def as_records(images, labels):
    """Sorted (label, pixels) byte strings: compares shuffled data sets."""
    images = images.reshape(len(images), -1)
    return sorted(bytes([int(label)]) + image.tobytes()
                  for image, label in zip(images, labels))


def assert_round_trip(loader, written, shuffled):
    """The loader returns exactly the written examples, pixels / 255."""
    images, labels = collect(loader)
    expected_images = written[0].reshape(images.shape).astype(onp.float32) / 255
    if shuffled:
        # Map back to bytes: exact, and independent of the shuffle order.
        assert as_records(onp.rint(images * 255).astype(onp.uint8), labels) \
            == as_records(*written)
        onp.testing.assert_array_equal(onp.sort(images, axis=None),
                                       onp.sort(expected_images, axis=None))
    else:
        onp.testing.assert_array_equal(images, expected_images)
        onp.testing.assert_array_equal(labels, written[1])


# Fashion-MNIST ---------------------------------------------------------------

def test_fashion_mnist_round_trip(tmp_path, np_mode):
    train, test = data.write_fashion_mnist_idx(tmp_path, n_train=50, n_test=30)
    train_iter, test_iter = data.load_fashion_mnist(16, root=tmp_path)
    check_batches(train_iter, np_mode, (1, 28, 28))
    check_batches(test_iter, np_mode, (1, 28, 28))
    assert len(train_iter) == 4 and len(test_iter) == 2
    assert_round_trip(train_iter, train, shuffled=True)
    assert_round_trip(test_iter, test, shuffled=False)


def test_fashion_mnist_writer_matches_idx_format(tmp_path):
    (images, labels), _ = data.write_fashion_mnist_idx(tmp_path, 3, 2, seed=7)
    with gzip.open(tmp_path / 'train-images-idx3-ubyte.gz') as f:
        raw = f.read()
    assert raw[:16] == bytes.fromhex('00000803 00000003 0000001c 0000001c')
    assert raw[16:] == images.tobytes()
    with gzip.open(tmp_path / 'train-labels-idx1-ubyte.gz') as f:
        assert f.read() == bytes.fromhex('00000801 00000003') + labels.tobytes()
    again, _ = data.write_fashion_mnist_idx(tmp_path / 'again', 3, 2, seed=7)
    onp.testing.assert_array_equal(again[0], images)


def test_fashion_mnist_resize(tmp_path, np_mode):
    data.write_fashion_mnist_idx(tmp_path, n_train=8, n_test=4)
    train_iter, test_iter = data.load_fashion_mnist(4, resize=96, root=tmp_path)
    check_batches(train_iter, np_mode, (1, 96, 96))
    check_batches(test_iter, np_mode, (1, 96, 96))


def test_fashion_mnist_ungzipped_files(tmp_path):
    train, _ = data.write_fashion_mnist_idx(tmp_path, n_train=10, n_test=5)
    for names in data.FASHION_MNIST_FILES.values():
        for name in names:
            path = tmp_path / name
            path.with_suffix('').write_bytes(gzip.decompress(path.read_bytes()))
            path.unlink()
    train_iter, _ = data.load_fashion_mnist(4, root=tmp_path)
    assert_round_trip(train_iter, train, shuffled=True)


def test_env_var_selects_folder_and_root_wins(tmp_path, monkeypatch):
    data.write_fashion_mnist_idx(tmp_path / 'env', n_train=6, n_test=3)
    data.write_fashion_mnist_idx(tmp_path / 'root', n_train=10, n_test=5)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / 'env'))
    assert data.data_dir() == str(tmp_path / 'env')
    train_iter, test_iter = data.load_fashion_mnist(4)
    assert len(collect(train_iter)[1]) == 6 and len(collect(test_iter)[1]) == 3
    train_iter, _ = data.load_fashion_mnist(4, root=tmp_path / 'root')
    assert len(collect(train_iter)[1]) == 10


def test_local_folder_defaults_to_no_workers(tmp_path):
    data.write_fashion_mnist_idx(tmp_path, n_train=4, n_test=2)
    data.write_cifar10_bin(tmp_path, n_train=5, n_test=2)
    for loaders in (data.load_fashion_mnist(2, root=tmp_path),
                    data.load_cifar10(2, root=tmp_path)):
        assert all(loader._num_workers == 0 for loader in loaders)


def test_fashion_mnist_missing_file(tmp_path):
    data.write_fashion_mnist_idx(tmp_path, n_train=4, n_test=2)
    (tmp_path / 't10k-labels-idx1-ubyte.gz').unlink()
    with pytest.raises(FileNotFoundError) as error:
        data.load_fashion_mnist(2, root=tmp_path)
    assert 't10k-labels-idx1-ubyte.gz' in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_fashion_mnist_empty_env_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match='train-images-idx3-ubyte'):
        data.load_fashion_mnist(2)


def rewrite_gz(path, edit):
    """Replace a gzipped file's content by edit(content)."""
    path.write_bytes(gzip.compress(edit(gzip.decompress(path.read_bytes()))))


def test_fashion_mnist_bad_magic(tmp_path):
    data.write_fashion_mnist_idx(tmp_path, n_train=4, n_test=2)
    path = tmp_path / 'train-images-idx3-ubyte.gz'
    rewrite_gz(path, lambda raw: (2049).to_bytes(4, 'big') + raw[4:])
    with pytest.raises(ValueError, match='magic number 2049, expected 2051') \
            as error:
        data.load_fashion_mnist(2, root=tmp_path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize('name, keep', [
    ('t10k-images-idx3-ubyte.gz', -1),  # last pixel missing
    ('train-labels-idx1-ubyte.gz', 6),  # cut inside the header
])
def test_fashion_mnist_truncated(tmp_path, name, keep):
    data.write_fashion_mnist_idx(tmp_path, n_train=4, n_test=2)
    rewrite_gz(tmp_path / name, lambda raw: raw[:keep])
    with pytest.raises(ValueError, match='truncated') as error:
        data.load_fashion_mnist(2, root=tmp_path)
    assert name in str(error.value)


def test_fashion_mnist_not_gzip(tmp_path):
    data.write_fashion_mnist_idx(tmp_path, n_train=4, n_test=2)
    (tmp_path / 'train-images-idx3-ubyte.gz').write_bytes(b'not gzip at all')
    with pytest.raises(ValueError, match='train-images-idx3-ubyte.gz'):
        data.load_fashion_mnist(2, root=tmp_path)


def test_fashion_mnist_label_count_mismatch(tmp_path):
    data.write_fashion_mnist_idx(tmp_path, n_train=4, n_test=2)
    data.write_fashion_mnist_idx(tmp_path / 'other', n_train=5, n_test=2)
    os.replace(tmp_path / 'other' / 'train-labels-idx1-ubyte.gz',
               tmp_path / 'train-labels-idx1-ubyte.gz')
    with pytest.raises(ValueError, match='4 images but .* 5 labels'):
        data.load_fashion_mnist(2, root=tmp_path)


def fake_download(monkeypatch, name, image_shape):
    """Replace gluon.data.vision.<name> by a recorder of tiny random data."""
    calls = []

    def dataset(train):
        calls.append(train)
        rng = onp.random.default_rng(int(train))
        images = rng.integers(0, 256, (6, *image_shape), dtype=onp.uint8)
        return gluon.data.ArrayDataset(mnp.array(images, dtype=onp.uint8),
                                       mnp.array(onp.arange(6), dtype='int32'))

    monkeypatch.setattr(gluon.data.vision, name, dataset)
    # d2l's default of 4 worker processes is pointless for fake data.
    monkeypatch.setattr(d2l, 'get_dataloader_workers', lambda: 0)
    return calls


def test_fashion_mnist_without_folder_downloads(monkeypatch, np_only):
    calls = fake_download(monkeypatch, 'FashionMNIST', (28, 28, 1))
    train_iter, test_iter = data.load_fashion_mnist(4, resize=32)
    assert calls == [True, False]
    check_batches(train_iter, True, (1, 32, 32))
    assert len(collect(test_iter)[1]) == 6


# CIFAR-10 --------------------------------------------------------------------

def test_cifar10_classes():
    assert len(data.CIFAR10_CLASSES) == len(set(data.CIFAR10_CLASSES)) == 10
    assert data.CIFAR10_CLASSES[0] == 'airplane'
    assert data.CIFAR10_CLASSES[-1] == 'truck'


def test_cifar10_round_trip(tmp_path, np_mode):
    train, test = data.write_cifar10_bin(tmp_path, n_train=23, n_test=7)
    assert sorted(os.listdir(tmp_path)) == sorted(
        data.CIFAR10_TRAIN_FILES + (data.CIFAR10_TEST_FILE,))
    train_iter, test_iter = data.load_cifar10(8, root=tmp_path)
    check_batches(train_iter, np_mode, (3, 32, 32))
    check_batches(test_iter, np_mode, (3, 32, 32))
    assert_round_trip(train_iter, train, shuffled=True)
    assert_round_trip(test_iter, test, shuffled=False)


def test_cifar10_writer_record_layout(tmp_path):
    _, (images, labels) = data.write_cifar10_bin(tmp_path, 5, 2, seed=3)
    raw = (tmp_path / 'test_batch.bin').read_bytes()
    assert len(raw) == 2 * 3073
    assert raw[0] == labels[0] and raw[3073] == labels[1]
    assert raw[1:3073] == images[0].tobytes()  # red plane, then green, blue


def test_cifar10_subfolder_and_batch_subset(tmp_path, monkeypatch):
    folder = tmp_path / data.CIFAR10_SUBDIR
    train, _ = data.write_cifar10_bin(folder, n_train=10, n_test=3)
    for name in data.CIFAR10_TRAIN_FILES[1:]:
        (folder / name).unlink()
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    train_iter, test_iter = data.load_cifar10(4)
    assert_round_trip(train_iter, (train[0][:2], train[1][:2]), shuffled=True)
    assert len(collect(test_iter)[1]) == 3


def test_cifar10_small_n_train_skips_empty_batches(tmp_path):
    train, _ = data.write_cifar10_bin(tmp_path, n_train=2, n_test=1)
    assert sorted(os.listdir(tmp_path)) == [
        'data_batch_1.bin', 'data_batch_2.bin', 'test_batch.bin']
    assert_round_trip(data.load_cifar10(2, root=tmp_path)[0], train,
                      shuffled=True)


def test_cifar10_missing_test_batch(tmp_path):
    data.write_cifar10_bin(tmp_path, n_train=5, n_test=2)
    (tmp_path / 'test_batch.bin').unlink()
    with pytest.raises(FileNotFoundError, match='test_batch.bin') as error:
        data.load_cifar10(2, root=tmp_path)
    assert str(tmp_path) in str(error.value)


def test_cifar10_no_training_batch(tmp_path):
    data.write_cifar10_bin(tmp_path, n_train=5, n_test=2)
    for name in data.CIFAR10_TRAIN_FILES:
        (tmp_path / name).unlink()
    with pytest.raises(FileNotFoundError, match='data_batch_1.bin') as error:
        data.load_cifar10(2, root=tmp_path)
    assert str(tmp_path) in str(error.value)


@pytest.mark.parametrize('keep', [-1, 0], ids=['last-byte-cut', 'empty'])
def test_cifar10_truncated_batch(tmp_path, keep):
    data.write_cifar10_bin(tmp_path, n_train=5, n_test=2)
    path = tmp_path / 'data_batch_3.bin'
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(ValueError, match='truncated') as error:
        data.load_cifar10(2, root=tmp_path)
    assert str(path) in str(error.value)


def test_cifar10_bad_label(tmp_path):
    data.write_cifar10_bin(tmp_path, n_train=5, n_test=2)
    path = tmp_path / 'test_batch.bin'
    path.write_bytes(b'\x0a' + path.read_bytes()[1:])
    with pytest.raises(ValueError, match='label 10') as error:
        data.load_cifar10(2, root=tmp_path)
    assert str(path) in str(error.value)


def test_cifar10_without_folder_downloads(monkeypatch, np_only):
    calls = fake_download(monkeypatch, 'CIFAR10', (32, 32, 3))
    train_iter, test_iter = data.load_cifar10(4)
    assert calls == [True, False]
    check_batches(train_iter, True, (3, 32, 32))
    assert len(collect(test_iter)[1]) == 6


# Training smoke test ---------------------------------------------------------

def test_train_ch6_on_generated_fashion_mnist(tmp_path, capsys, np_only):
    # 160 / 32 = 5 batches: train_ch6 needs num_batches // 5 > 0.
    data.write_fashion_mnist_idx(tmp_path, n_train=160, n_test=32)
    train_iter, test_iter = data.load_fashion_mnist(32, root=tmp_path)
    net = nn.Sequential()
    net.add(nn.Conv2D(4, kernel_size=3, activation='relu'),
            nn.MaxPool2D(pool_size=2), nn.Dense(10))
    d2l.train_ch6(net, train_iter, test_iter, 1, 0.05, d2l.try_gpu())
    out = capsys.readouterr().out
    assert 'train acc' in out and 'examples/sec' in out
    assert 'nan' not in out
