"""One style for every algorithm: a class of pure methods built by `build(spec, cfg)`,
whose `agent` property is what `make_agent(spec, cfg)` returns."""

from __future__ import annotations

import importlib

import pytest

from awmp.algos.registry import MODULES
from awmp.envs import EnvSpec


@pytest.mark.parametrize("module", MODULES)
def test_make_agent_is_the_built_class_agent(module):
    mod = importlib.import_module(module)
    cfg = mod.ALGORITHM.config()
    built = mod.build(EnvSpec(3, 1), cfg)
    assert built.agent is built.agent  # built once per instance
    for name in ("init", "act", "act_deterministic", "update"):
        assert getattr(built.agent, name).__self__ is built  # a method, not a closure
    agent = mod.make_agent(EnvSpec(3, 1), cfg)
    assert type(agent) is type(built.agent) and agent.name == mod.ALGORITHM.name
