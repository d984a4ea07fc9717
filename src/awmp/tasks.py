"""Small tasks of our own that test the paper's premise in minutes: awmp/Switch-v0 below, and
awmp/Fork-v0 (`ForkEnv`), which separates the mode choice from input resolution.

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


def register() -> None:
    if SWITCH_ID not in gym.registry:
        gym.register(SWITCH_ID, entry_point=SwitchEnv, max_episode_steps=SWITCH_STEPS)
    if FORK_ID not in gym.registry:
        gym.register(FORK_ID, entry_point=ForkEnv, max_episode_steps=FORK_STEPS)


register()
