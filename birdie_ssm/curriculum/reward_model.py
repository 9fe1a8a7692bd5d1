"""The Birdie controller's reward model: a discounted Bayesian linear model of each arm's loss
change.

Aioli's mixing law, L_{t+1} = L_t - A p, in log space and per step, with diminishing returns:
arm i's log-loss change over an interval of ``u`` (relative) steps trained with mixture p is
``u * (A_i . p + (B_i + D_i age) sqrt(p_i))`` plus noise. Row A_i holds arm i's own effect (A_ii)
and the cross-arm terms (training arm j moves arm i's loss); B_i lets an arm's own share pay off
concavely (a little training goes a long way), as it does in real training and the simulator;
D_i is a trend, so the model follows an arm whose learnability drifts (its current payoff is
B_i at age 0) while the cross-arm terms keep the longer, discounted memory. The cross-arm terms
have a tight prior, so with little evidence the model is a per-arm one (a gain is credited to
the arm's own share, as a bandit does) and learns interactions only where the data demand them.
Each row has a Gaussian posterior (a ridge prior, observations weighted by ``gamma ** age``, a
noise variance estimated from the weighted residuals with a prior guess), so a Thompson draw is
wide exactly where the history says little: an arm never played keeps its prior width."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TREND_SPAN = 10.0  # mean intervals per unit of age in the trend term


@dataclass
class Posterior:
    """Per-arm Gaussian posteriors over the rows of A, in units of ``scale`` (log-loss change)."""

    mean: np.ndarray  # [N, N + 2]: row i is arm i's mean (A_i, then B_i, then its trend D_i)
    chol: np.ndarray  # [N, N + 2, N + 2]: row i's covariance = chol[i] @ chol[i].T
    noise: np.ndarray  # [N]: each arm's noise standard deviation (normalised units)
    scale: float  # the log-loss change that 1.0 stands for

    def sample(self, rng: np.random.Generator, draws: int, width: float = 1.0) -> np.ndarray:
        """``draws`` draws of (A | B | D), [draws, N, N + 2], in log-loss units per relative
        step."""
        z = width * rng.standard_normal((draws, *self.mean.shape))
        return self.scale * (self.mean + np.einsum("ijk,dik->dij", self.chol, z))


def features(mixtures: np.ndarray, ages: np.ndarray | None = None) -> np.ndarray:
    """Each arm's regressors for mixtures [..., N] at ``ages`` [...] (0 if None):
    [..., N (arm), N + 2] = (p, sqrt(p_i), age * sqrt(p_i))."""
    n = mixtures.shape[-1]
    tiled = np.broadcast_to(mixtures[..., None, :], (*mixtures.shape, n))
    root = np.sqrt(np.clip(mixtures, 0.0, None))[..., None]
    age = np.zeros(mixtures.shape[:-1]) if ages is None else np.asarray(ages, dtype=np.float64)
    return np.concatenate([tiled, root, age[..., None, None] * root], axis=-1)


def predict_changes(effects: np.ndarray, mixtures: np.ndarray) -> np.ndarray:
    """Log-loss change per relative step [D, C, N] of mixtures [C, N] under ``effects`` [D, N, N+2]
    now (age 0, so the trend column drops out)."""
    n = mixtures.shape[-1]
    linear = mixtures @ effects[:, :, :n].transpose(0, 2, 1)  # [D, C, N]
    return linear + np.sqrt(np.clip(mixtures, 0.0, None)) * effects[:, None, :, n]


def fit_posterior(
    mixtures: np.ndarray,
    changes: np.ndarray,
    valid: np.ndarray,
    lengths: np.ndarray,
    *,
    gamma: float,
    prior_own: float,
    prior_cross: float,
    prior_shared: float,
    prior_concave: float,
    prior_trend: float,
    prior_noise: float,
) -> Posterior:
    """Posterior of A from T transitions: ``mixtures`` [T, N] trained for ``lengths`` [T] steps
    changed log losses by ``changes`` [T, N] (``valid`` [T, N] marks measured ones).

    Changes are normalised by the largest per-arm weighted RMS, so the priors (standard deviations
    of A's own and cross terms, B, D and the noise) are in units of the biggest typical change;
    lengths by their mean.
    """
    t_count, n = changes.shape
    weights = gamma ** np.arange(t_count - 1, -1, -1, dtype=np.float64)
    u = lengths / max(float(np.mean(lengths)), 1e-12)
    # Each transition's age: its midpoint relative to the next interval's, in units of
    # ``TREND_SPAN`` mean intervals, so D_i is how much B_i changed over that span.
    ends = np.cumsum(u)
    ages = ((ends - u / 2) - (ends[-1] + u[-1] / 2)) / TREND_SPAN
    x_all = u[:, None, None] * features(mixtures, ages)  # [T, N, N + 2]
    seen = weights[:, None] * valid
    # The largest arm's typical change: an arm the history says little about may be that good.
    per_arm = (seen * changes**2).sum(axis=0) / np.maximum(seen.sum(axis=0), 1e-12)
    scale = float(np.sqrt(per_arm.max()))
    scale = max(scale, 1e-6)
    y = np.where(valid, changes, 0.0) / scale
    mean, chol, noise = np.zeros((n, n + 2)), np.zeros((n, n + 2, n + 2)), np.zeros(n)
    for i in range(n):
        w, x = seen[:, i], x_all[:, i]
        # Prior covariance: the cross terms A_ij (j != i) share one draw of width prior_shared (how
        # arm i moves whatever else is trained: forgetting, general transfer) plus their own small
        # deviations of width prior_cross; A_ii has width prior_own, B_i prior_concave and D_i
        # prior_trend. A shared width as large as A_ii's let a gain seen under the uniform mixture
        # be read as "arm i improves whatever is trained", so nothing favoured arm i.
        others = np.arange(n + 2) != i
        others[n:] = False
        cov = prior_cross**2 * np.eye(n + 2) + prior_shared**2 * np.outer(others, others)
        cov[i, i], cov[n, n] = prior_own**2, max(prior_concave, 1e-6) ** 2
        cov[n + 1, n + 1] = max(prior_trend, 1e-6) ** 2
        prior = np.linalg.inv(cov)
        gram = (x * w[:, None]).T @ x
        xty = (x * w[:, None]).T @ y[:, i]
        # Two passes: the prior noise guess gives a fit whose weighted residuals (with the guess
        # worth two observations) estimate this arm's noise, which then sets the posterior width.
        sigma2 = prior_noise**2
        for _ in range(2):
            precision = prior + gram / sigma2
            mu = np.linalg.solve(precision, xty / sigma2)
            residual = (w * (y[:, i] - x @ mu) ** 2).sum()
            sigma2 = (2.0 * prior_noise**2 + residual) / (2.0 + w.sum())
        precision = prior + gram / sigma2
        mean[i] = np.linalg.solve(precision, xty / sigma2)
        # Covariance = precision^-1 = L^-T L^-1 with precision = L L^T; a draw is mu + L^-T z.
        lower = np.linalg.cholesky(precision)
        chol[i] = np.linalg.inv(lower).T
        noise[i] = np.sqrt(sigma2)
    return Posterior(mean, chol, noise, scale)
