"""Drift statistics: PSI and the two-sample KS test, as properties over many inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.feedback._drift import embedding_drift, kolmogorov_sf, ks_2samp, pixel_features, psi

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(200, 2000)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, n=sizes, bins=st.integers(2, 20))
def test_psi_of_a_sample_against_itself_is_zero(seed: int, n: int, bins: int) -> None:
    sample = np.random.default_rng(seed).normal(size=n)
    assert psi(sample, sample, bins) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, n=sizes, m=sizes, bins=st.integers(2, 20), scale=st.floats(0.1, 10.0))
def test_psi_is_non_negative(seed: int, n: int, m: int, bins: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    assert psi(rng.normal(size=n), rng.normal(size=m) * scale, bins) >= 0.0


@settings(max_examples=30, deadline=None)
@given(seed=seeds, shift=st.floats(0.05, 1.0))
def test_psi_grows_with_the_shift(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    expected, actual = rng.normal(size=5000), rng.normal(size=5000)
    small, large = psi(expected, actual + shift), psi(expected, actual + 2 * shift + 0.2)
    assert large > small


def test_psi_of_a_same_distribution_sample_is_small_and_of_a_shift_large() -> None:
    rng = np.random.default_rng(0)
    expected = rng.normal(size=4000)
    assert psi(expected, rng.normal(size=4000)) < 0.02
    assert psi(expected, rng.normal(size=4000) + 1.0) > 0.5


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=sizes, m=sizes)
def test_ks_pvalue_is_high_for_the_same_distribution(seed: int, n: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    statistic, pvalue = ks_2samp(rng.normal(size=n), rng.normal(size=m))
    assert 0.0 <= statistic <= 1.0
    # under the null p < 1e-6 has probability 1e-6 per draw
    assert pvalue > 1e-6


def test_ks_pvalues_of_the_same_distribution_are_roughly_uniform() -> None:
    rng = np.random.default_rng(1)
    pvalues = np.array([ks_2samp(rng.normal(size=300), rng.normal(size=300))[1] for _ in range(200)])
    assert 0.03 <= (pvalues < 0.1).mean() <= 0.2  # about 10% below 0.1 (the asymptotic test is conservative)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, shift=st.floats(0.5, 3.0))
def test_ks_detects_a_shift(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    statistic, pvalue = ks_2samp(rng.normal(size=1000), rng.normal(size=1000) + shift)
    assert pvalue < 1e-6
    assert statistic > 0.15


def test_ks_of_identical_samples() -> None:
    sample = np.arange(100.0)
    assert ks_2samp(sample, sample) == (0.0, 1.0)
    assert ks_2samp(sample, sample + 1000.0)[0] == 1.0


def test_kolmogorov_survival_matches_known_values() -> None:
    assert kolmogorov_sf(0.0) == 1.0
    assert kolmogorov_sf(1.36) == pytest.approx(0.049, abs=1e-3)  # the 5% critical value
    assert kolmogorov_sf(1.63) == pytest.approx(0.0098, abs=5e-4)  # the 1% critical value


def test_empty_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        psi(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-empty"):
        ks_2samp(np.array([1.0]), np.array([]))


def test_pixel_features_see_an_intensity_shift() -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((300, 1, 28, 28)) > 0.7).astype(np.uint8) * 255
    features = pixel_features(images)
    assert set(features) == {
        "mean_intensity",
        "std_intensity",
        "dark_fraction",
        "bright_fraction",
        "edge_energy",
    }
    assert all(v.shape == (300,) for v in features.values())
    negative = pixel_features(255 - images)
    assert psi(features["mean_intensity"], features["mean_intensity"]) == 0.0
    assert psi(features["dark_fraction"], negative["dark_fraction"]) > 1.0


def test_embedding_drift_same_and_shifted() -> None:
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(16, 16))
    reference = rng.normal(size=(800, 16)) @ mix
    same = embedding_drift(reference, rng.normal(size=(400, 16)) @ mix)
    moved = embedding_drift(reference, (rng.normal(size=(400, 16)) + 0.5) @ mix)
    assert same["ks_pvalue"] > 0.01
    assert moved["ks_pvalue"] < 1e-6
    assert moved["mean_shift"] > same["mean_shift"]
