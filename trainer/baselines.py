"""Forecast baselines, scored on the same held-out readings as the model (NumPy only: the exporter uses it too).

A model that loses to "repeat the last reading" is worse than no model, so every forecast and anomaly report
puts the model next to three forecasts that need no training:
    persistence      the latest reading, repeated over the horizon
    seasonal_naive   the reading one season before the forecast time (`--season N`, or detected from the
                     training split by `detect_season`); absent when there is no season
    drift            the latest reading plus k times the average change per reading since the first one
                     (the drift method of Hyndman & Athanasopoulos, FPP3 5.2), extrapolated k steps ahead
Each is made at every held-out reading from the readings up to it: the held-out stream plus the readings of
the same series before it (train and validation, `Heldout.context`), as a device that kept its own log would
see them. Where a baseline has no forecast yet (too little history) it repeats the latest reading.
"""

from __future__ import annotations

import numpy as np

BASELINES = ("persistence", "seasonal_naive", "drift")
MIN_SEASON_ACF = 0.3  # an autocorrelation peak below this is not called a season, however significant
SEASON_Z = 1.96  # two-sided 5%, the band statsmodels' acf(alpha=0.05) and sktime's SeasonalityACF draw


def detect_season(target: np.ndarray, max_lag: int | None = None) -> int | None:
    """The season (readings) of a training series (L,), or None.

    Candidates are the local peaks of the autocorrelation of the first differences (differencing removes a
    trend that would mask the cycle) at lags 2 .. len/2, so the series holds at least two full cycles. A peak
    counts when it is significant and large:
    - significant: above the 95% band of what noise around a moving level would show. Differencing such a
      series (ARIMA(0,1,1), the model of exponential smoothing) leaves an MA(1): a negative autocorrelation
      r1 at lag 1 and an alternation that peaks at lag 2 by chance. Bartlett's formula gives the band beyond
      lag 1 under that null, 1.96 * sqrt((1 + 2 r1^2) / n) (statsmodels' `acf(alpha=)` band with the sum cut
      at lag 1), so a short noisy trend's lag-2 bump is not called a cycle, while a real one is found;
    - large: at least MIN_SEASON_ACF (tested over hundreds of lags, some noise peak always clears the band
      on a long series).
    The season is the highest such peak."""
    z = np.asarray(target, np.float64)
    z = z[np.isfinite(z)]
    d = np.diff(z)
    if len(d) < 8 or d.std() < 1e-12:
        return None
    d = d - d.mean()
    n = len(d)
    top = min(n // 2, max_lag or 500)
    if top < 3:
        return None
    acf = np.array([np.dot(d[:-lag], d[lag:]) for lag in range(1, top + 1)]) / np.dot(d, d)  # acf[i]: lag i + 1
    band = SEASON_Z * np.sqrt((1.0 + 2.0 * acf[0] ** 2) / n)  # Bartlett under an MA(1) null, lags >= 2
    best, best_lag = max(MIN_SEASON_ACF, band), None
    for i in range(1, top - 1):
        if acf[i] >= acf[i - 1] and acf[i] >= acf[i + 1] and acf[i] > best:
            best, best_lag = float(acf[i]), i + 1
    return best_lag


def levels(y: np.ndarray, context: np.ndarray | None, n_targets: int) -> np.ndarray:
    """(L, n_targets) the target values at each reading: the k = 0 block of the target row made one reading
    earlier, and for the first reading the last one of the context (NaN without one)."""
    lev = np.full((len(y), n_targets), np.nan)
    lev[1:] = y[:-1, :n_targets]
    if context is not None and len(context):
        lev[0] = context[-1]
    return lev


def forecasts(y: np.ndarray, context: np.ndarray | None, horizon: int, season: int | None) -> dict[str, np.ndarray]:
    """Baseline forecasts (L, horizon * n_targets) made at each reading of one held-out stream.

    y: (L, horizon * n_targets) raw targets of the stream (output k * n_targets + j is target j at t+1+k);
    context: (Lc, n_targets) raw target readings of the same series before the stream (NaN: none).
    """
    n_t = y.shape[1] // horizon
    ctx = np.zeros((0, n_t)) if context is None else np.asarray(context, np.float64).reshape(-1, n_t)
    lev = levels(y, ctx, n_t)
    z = np.concatenate([ctx, lev])  # (Lc + L, n_t): every target reading known at some point
    lc, n = len(ctx), len(y)
    now = lc + np.arange(n)  # index in z of each held-out reading
    ks = np.arange(1, horizon + 1)
    persist = np.tile(lev, (1, horizon))  # (L, H * n_t)
    out = {"persistence": persist}
    if season:
        back = now[:, None] + ks[None, :] - season * np.ceil(ks / season).astype(int)[None, :]  # (L, H)
        sn = np.where((back >= 0)[:, :, None], z[np.clip(back, 0, None)], np.nan)  # (L, H, n_t)
        out["seasonal_naive"] = _fill(sn.reshape(n, -1), persist)
    drift = np.full((n, horizon, n_t), np.nan)
    finite = np.isfinite(z).all(axis=1)
    if finite.any():
        first = int(np.argmax(finite))
        span = (now - first).astype(np.float64)  # readings between the first known one and now
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(span[:, None] > 0, (lev - z[first]) / span[:, None], np.nan)  # (L, n_t)
        drift = lev[:, None, :] + ks[None, :, None] * slope[:, None, :]
    out["drift"] = _fill(drift.reshape(n, -1), persist)
    return out


def _fill(f: np.ndarray, persist: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(f), f, persist)
