"""Drift statistics, pure numpy: population stability index, two-sample Kolmogorov-Smirnov, and the
pixel features and embedding projections they are computed on.

Nothing here touches the store or a model; ``monitor`` feeds these functions arrays.
"""

from __future__ import annotations

import math

import numpy as np

# A floor for empty bins, so PSI stays finite when a bin of one sample is empty.
_EPS = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (1-D samples).

    Bin edges are the quantiles of ``expected`` (so each reference bin holds about the same share;
    a tied quantile also gets an edge just above it, so its point mass is a bin of its own);
    PSI = sum over bins of (a - e) * ln(a / e) with empty bins floored at 1e-4. It is >= 0, 0 for
    identical histograms; 0.1-0.2 is usually read as a moderate shift, > 0.2 as a significant one.
    """
    expected = np.asarray(expected, dtype=np.float64).ravel()
    actual = np.asarray(actual, dtype=np.float64).ravel()
    if expected.size == 0 or actual.size == 0:
        raise ValueError("psi needs two non-empty samples")
    if bins < 2:
        raise ValueError(f"psi needs at least 2 bins. Got {bins}.")
    edges = np.unique(np.quantile(expected, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    if len(edges) < bins - 1:
        # Tied quantiles: the reference has point masses (a share that is 0 for most texts). Split each
        # off from the values just above it, or a shift from 0 to 0.3 would stay in the same bin.
        edges = np.unique(np.concatenate([edges, np.nextafter(edges, np.inf)]))
    e = _shares(expected, edges)
    a = _shares(actual, edges)
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(sample: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``sample`` per bin (bins split at ``edges``, open at both ends), floored at _EPS."""
    counts = np.bincount(np.searchsorted(edges, sample, side="right"), minlength=len(edges) + 1)
    shares = counts / sample.size
    return np.maximum(shares, _EPS)


def ks_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov test: (statistic D, asymptotic p-value).

    D is the largest gap between the two empirical CDFs; the p-value uses the Kolmogorov
    distribution at sqrt(n_eff) * D with Stephens' small-sample correction (within ~1e-3 of scipy's ``asymp``).
    """
    a = np.sort(np.asarray(a, dtype=np.float64).ravel())
    b = np.sort(np.asarray(b, dtype=np.float64).ravel())
    if a.size == 0 or b.size == 0:
        raise ValueError("ks_2samp needs two non-empty samples")
    values = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, values, side="right") / a.size
    cdf_b = np.searchsorted(b, values, side="right") / b.size
    statistic = float(np.max(np.abs(cdf_a - cdf_b)))
    n_eff = a.size * b.size / (a.size + b.size)
    root = math.sqrt(n_eff)
    return statistic, kolmogorov_sf((root + 0.12 + 0.11 / root) * statistic)


def kolmogorov_sf(x: float) -> float:
    """P(K > x) of the Kolmogorov distribution: 2 * sum_k (-1)^(k-1) exp(-2 k^2 x^2), in [0, 1]."""
    if x < 0.2:  # the alternating series converges slowly here; the survival is 1 to 1e-9
        return 1.0
    k = np.arange(1, 101, dtype=np.float64)
    total = 2.0 * float(np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k * k * x * x)))
    return min(1.0, max(0.0, total))


# -- what drift is measured on ------------------------------------------------------------------

DARK_LEVEL = 32  # uint8 level below which a pixel counts as dark (background of a silhouette)


def pixel_features(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of uint8 images (N, C, H, W): the features PSI watches."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"images must be shaped (N, C, H, W). Got {x.shape}.")
    flat = x.reshape(len(x), -1).astype(np.float32)
    gray = x.astype(np.float32).mean(axis=1)
    # mean absolute horizontal + vertical gradient: high for sharp, busy images, low for blurred ones
    dx = np.abs(np.diff(gray, axis=2)).mean(axis=(1, 2)) if gray.shape[2] > 1 else np.zeros(len(x))
    dy = np.abs(np.diff(gray, axis=1)).mean(axis=(1, 2)) if gray.shape[1] > 1 else np.zeros(len(x))
    features = {
        "mean_intensity": flat.mean(axis=1),
        "std_intensity": flat.std(axis=1),
        "dark_fraction": (flat < DARK_LEVEL).mean(axis=1),
        "bright_fraction": (flat > 255 - DARK_LEVEL).mean(axis=1),
        "edge_energy": dx + dy,
    }
    return {name: np.asarray(values, dtype=np.float64) for name, values in features.items()}


def principal_projection(
    reference: np.ndarray, current: np.ndarray, components: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Both samples (N, D) projected on the first ``components`` principal axes of ``reference``."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        raise ValueError(
            f"embeddings must be (N, D) with equal D. Got {reference.shape} and {current.shape}."
        )
    center = reference.mean(axis=0)
    _, _, axes = np.linalg.svd(reference - center, full_matrices=False)
    axes = axes[: max(1, min(components, axes.shape[0]))]
    return (reference - center) @ axes.T, (current - center) @ axes.T


def embedding_drift(reference: np.ndarray, current: np.ndarray, components: int = 8) -> dict[str, float]:
    """KS tests of ``current`` embeddings against ``reference`` on the reference's top principal axes.

    Each of the first ``components`` principal axes gets a KS test; the p-value reported is the
    smallest one times the number of tests (Bonferroni), capped at 1, so it stays a valid test of
    "same distribution". Also returns the largest KS statistic and the shift of the mean embedding in
    units of the reference's mean per-axis spread.
    """
    ref_proj, cur_proj = principal_projection(reference, current, components)
    tests = [ks_2samp(ref_proj[:, i], cur_proj[:, i]) for i in range(ref_proj.shape[1])]
    reference = np.asarray(reference, dtype=np.float64)
    spread = float(np.mean(reference.std(axis=0))) or 1.0
    shift = np.linalg.norm(np.asarray(current, dtype=np.float64).mean(axis=0) - reference.mean(axis=0))
    return {
        "ks_statistic": max(d for d, _ in tests),
        "ks_pvalue": min(1.0, min(p for _, p in tests) * len(tests)),
        "components": float(len(tests)),
        "mean_shift": float(shift / spread),
    }
