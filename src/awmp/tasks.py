"""Small tasks of our own that test the paper's premise in minutes: awmp/Switch-v0 below,
awmp/Fork-v0 (`ForkEnv`), which separates the mode choice from input resolution, and
awmp/Peaks-v0 (`PeaksEnv`), whose entropy-regularized optimum has four equal modes.

`awmp/Switch-v0`: the paper's motivation (Section 1) is that optimal policies are often
discontinuous: two states with similar representations can need very different actions, which
one function approximator with shared parameters (one Gaussian) represents badly. Switch makes
that true by construction.

A point moves on a line, p in [-1, 1], starting at p0 ~ U(-0.5, 0.5). Each episode draws a cue
c that stays fixed; the goal is the end g = sign(c) (+1 or -1). Observation (p, c); action
a in [-1, 1]; p <- clip(p + 0.1 a, -1, 1); shaped reward r = -|p' - g| every step; 50 steps,
no termination. (The random start keeps a policy from just amplifying its first move: the side
p0 is on says nothing about the goal.)

The optimal policy is a*(p, c) = sign(c): full speed towards g. It jumps from -1 to +1 across
the boundary c = 0, for every p. The cue is drawn as c = u^3, u ~ U(-1, 1), so episodes near
the boundary are common: |c| < 0.001 in 10% of them, |c| < 0.01 in 22%. There, two nearly
identical observations demand opposite full-speed actions; a continuous policy must pass
through small actions near c = 0 and is slow on exactly those episodes. Returns: optimal
-sum_j max(|p0 - g| - 0.1 j, 0), j = 1..50 (-4.5 from p0 = 0); standing still -50 |p0 - g|.
Every linear policy clip(k c + w p + b) with |k| <= 1000 loses more than 1.5 per episode on
average to the optimum (tests/test_tasks.py).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

SWITCH_ID = "awmp/Switch-v0"
SWITCH_STEPS = 50
SPEED = 0.1  # position change per step at |a| = 1


class SwitchEnv(gym.Env):
    """See the module docstring. Deterministic given the reset seed."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.position = 0.0
        self.cue = 0.0

    @property
    def goal(self) -> float:
        return 1.0 if self.cue >= 0 else -1.0

    def _obs(self) -> np.ndarray:
        return np.array([self.position, self.cue], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # float32 like the observation, so obs, dynamics and goal always agree exactly.
        self.position = float(np.float32(self.np_random.uniform(-0.5, 0.5)))
        u = float(self.np_random.uniform(-1.0, 1.0))
        self.cue = float(np.float32(u**3))
        return self._obs(), {"goal": self.goal}

    def step(self, action):
        a = float(np.clip(np.asarray(action, np.float64).reshape(-1)[0], -1.0, 1.0))
        self.position = float(np.clip(self.position + SPEED * a, -1.0, 1.0))
        reward = -abs(self.position - self.goal)  # shaped: the closer to the goal the better
        return self._obs(), reward, False, False, {"goal": self.goal}


def optimal_action(obs: np.ndarray) -> np.ndarray:
    """a*(p, c) = sign(c) (c = 0 counts as +, as the env's goal does), shape (..., 1)."""
    obs = np.asarray(obs)
    return np.where(obs[..., 1:2] >= 0, 1.0, -1.0).astype(np.float32)


FORK_ID = "awmp/Fork-v0"
FORK_STEPS = 50
FORK_MODE = 0.6  # the two good actions, +-0.6
FORK_WIDTH = 0.15  # each mode's reward bump: exp(-(a - m)^2 / (2 * 0.15^2))


class ForkEnv(gym.Env):
    """A second premise task: the best action jumps across c = 0 *and* the actions
    in between are bad, while the cue is easy to resolve.

    Switch-v0 turned out to test how finely a network resolves its input near c = 0 as much as
    whether one Gaussian can jump (docs/RESULTS.md §3, question 3): its cue c = u^3 puts 46% of
    the episodes at |c| < 0.1, where critic and actor alike must resolve the sign of a tiny
    input. Fork separates the two. Each episode draws a cue c ~ U(-1, 1) that stays fixed;
    observation (c,); action a in [-1, 1]; nothing moves; every step pays

        r(a; c) = (1 + c)/2 k(a - 0.6) + (1 - c)/2 k(a + 0.6),  k(x) = exp(-x^2 / (2 * 0.15^2)),

    50 steps, no termination. Two reward modes, at a = +0.6 and a = -0.6, with a valley between
    (r(0; c) < 3.4e-4); the mode at +0.6 is the higher one exactly when c > 0. The optimal policy
    a*(c) = 0.6 sign(c) earns 50 (1 + |c|)/2 (mean 37.5 over the cue distribution); a policy that
    stays on one mode for every cue earns 50/2 (mean 25); one that blends the modes, a = 0,
    almost nothing. The stake of choosing the wrong mode is 50 |c|: resolving sign(c) matters
    only as much as |c| does, so resolution costs little here. What costs is the valley: for
    every c < 0, a = +0.6 is a strict local maximum of r(.; c) (and a = -0.6 for every c > 0),
    so a policy continuous in c must cross the valley somewhere between the modes (SAC does, on
    about a quarter of the cues: docs/RESULTS.md §3, question 6), while a mixture with a
    component on each mode and a gate that ranks them by Q can jump from one to the other.
    """

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.cue = 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cue = float(np.float32(self.np_random.uniform(-1.0, 1.0)))
        return np.array([self.cue], np.float32), {}

    def step(self, action):
        a = float(np.clip(np.asarray(action, np.float64).reshape(-1)[0], -1.0, 1.0))
        return np.array([self.cue], np.float32), fork_reward(a, self.cue), False, False, {}


def fork_reward(a: float | np.ndarray, c: float | np.ndarray) -> float | np.ndarray:
    """r(a; c) of awmp/Fork-v0 (see ForkEnv), elementwise."""

    def k(x):
        return np.exp(-np.square(x) / (2.0 * FORK_WIDTH**2))

    return (1.0 + c) / 2.0 * k(a - FORK_MODE) + (1.0 - c) / 2.0 * k(a + FORK_MODE)


PEAKS_ID = "awmp/Peaks-v0"
PEAKS_STEPS = 50
PEAKS_WIDTH = 0.1  # each peak's width w in each action coordinate


class PeaksEnv(gym.Env):
    """A contextual bandit whose entropy-regularized optimum is a four-mode policy.

    Each episode draws a context c ~ U(-1, 1)^2 that stays fixed; observation c; action
    a in [-1, 1]^2; nothing moves; every step pays

        r(a; c) = g(a_1; m_1) + g(a_2; m_2),   m_i = 0.55 + 0.15 c_i  (in [0.4, 0.7]),
        g(x; m) = k(x - m) + k(x + m),         k(x) = exp(-x^2 / (2 * 0.1^2)),

    50 steps, no termination. The surface has four peaks of exactly equal height, at
    (+-m_1, +-m_2) (g is even in x), with valleys between them; where they are depends on c.
    Return: each of the four peaks earns the most, 50 max_a r(a; c) (`peaks_best_return`, about
    100): a deterministic policy, Gaussian or not, can reach that.

    What no single Gaussian can reach is the entropy-regularized optimum that SAC and the
    mixture methods optimise: per step, max_pi E_pi[r] + alpha H(pi) over densities pi on the
    box is attained only by pi*(a|c) = exp(r(a; c)/alpha) / Z(c), with value
    J*(c) = alpha log Z(c) (`peaks_soft_optimum`), and every pi earns
    J*(c) - alpha KL(pi || pi*). Since r is a sum over the coordinates, pi* is a product of two
    1-D two-mode densities and J* = J*_1(m_1) + J*_1(m_2). A diagonal tanh-Gaussian (each of
    awmp's components) is a product of two 1-D tanh-Gaussians too, so its soft value is a sum of
    two 1-D values, each at most max_{mu, sigma} J_1(mu, sigma; m) < J*_1(m): its gap to the
    optimum is at least twice the 1-D gap. tests/test_tasks.py bounds that gap by a grid search
    over (mu, log sigma) and a local search from its best point at m = 0.4, 0.55, 0.7 for
    alpha = 0.2: above 0.13 (about alpha log 2, the entropy of the mode choice given up), so a
    diagonal tanh-Gaussian gives up more than 0.26 per step, 13 per episode, while two
    components per coordinate (four in 2-D, one per peak) come within 0.02 per coordinate.
    """

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.context = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.context = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32).astype(np.float64)
        return self.context.astype(np.float32), {}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float64).reshape(-1)[:2], -1.0, 1.0)
        reward = float(peaks_reward(a, self.context))
        return self.context.astype(np.float32), reward, False, False, {}


def peaks_modes(c: np.ndarray) -> np.ndarray:
    """m(c) = 0.55 + 0.15 c, elementwise: the peaks sit at (+-m_1, +-m_2)."""
    return 0.55 + 0.15 * np.asarray(c, np.float64)


def _peaks_g(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    def k(y):
        return np.exp(-np.square(y) / (2.0 * PEAKS_WIDTH**2))

    return k(x - m) + k(x + m)


def peaks_reward(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """r(a; c) of awmp/Peaks-v0 (see PeaksEnv); a, c: (..., 2)."""
    a, m = np.asarray(a, np.float64), peaks_modes(c)
    return _peaks_g(a[..., 0], m[..., 0]) + _peaks_g(a[..., 1], m[..., 1])


def peaks_best_return(c: np.ndarray) -> float:
    """50 max_a r(a; c): the most an episode can earn (at any of the four peaks)."""
    m = peaks_modes(c)
    return float(PEAKS_STEPS * np.sum(_peaks_g(m, m)))


def peaks_soft_optimum_1d(m: float, alpha: float, n: int = 200_001) -> float:
    """J*_1(m) = alpha log int_{-1}^{1} exp(g(x; m)/alpha) dx, by the trapezoid rule."""
    x = np.linspace(-1.0, 1.0, n)
    f = np.exp((_peaks_g(x, m) - 2.0) / alpha)  # scaled by exp(-2/alpha) against overflow
    return float(2.0 + alpha * np.log(np.trapezoid(f, x)))


def peaks_soft_optimum(c: np.ndarray, alpha: float) -> float:
    """J*(c) = alpha log int exp(r(a; c)/alpha) da: the entropy-regularized optimum per step."""
    m = peaks_modes(c)
    return peaks_soft_optimum_1d(float(m[0]), alpha) + peaks_soft_optimum_1d(float(m[1]), alpha)


def register() -> None:
    if PEAKS_ID not in gym.registry:
        gym.register(PEAKS_ID, entry_point=PeaksEnv, max_episode_steps=PEAKS_STEPS)
    if SWITCH_ID not in gym.registry:
        gym.register(SWITCH_ID, entry_point=SwitchEnv, max_episode_steps=SWITCH_STEPS)
    if FORK_ID not in gym.registry:
        gym.register(FORK_ID, entry_point=ForkEnv, max_episode_steps=FORK_STEPS)


register()
