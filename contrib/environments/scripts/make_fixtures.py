"""Records reference trajectories from Gymnasium itself, for tests/it/parity.rs.

Every fixture comes from `gymnasium.make(id)` (so with Gymnasium's TimeLimit and
checker wrappers); nothing is computed here but the actions fed to it. Actions come
from fixed NumPy generators or from simple deterministic controllers that read
Gymnasium's own observations, so the files are reproducible.

Run from the repository root:

    pip install "gymnasium==1.4.0" "numpy==2.4.6"
    python contrib/environments/scripts/make_fixtures.py

It writes contrib/environments/fixtures/<id>.json, one per environment:

    {
      "schema": 1, "env_id": ..., "gymnasium": version, "numpy": version,
      "max_episode_steps": n,
      "observation_space": space, "action_space": space,
          # {"type": "discrete", "n": n} or {"type": "box", "low": [...], "high": [...]}
          # with infinite bounds as "inf" / "-inf" (plasma-protocol's JSON form)
      "runs": [                 # one env instance each, built by gymnasium.make(id)
        {
          "name": ...,
          "physics": {name: value},   # attributes set on env.unwrapped before reset
          "episodes": [
            {
              "seed": int or null,     # env.reset(seed=seed); null continues the RNG
              "reset_obs": [...],      # observation returned by reset
              "reset_state": [...],    # env.unwrapped.state right after reset
              "set_state": [...] or null,  # then env.unwrapped.state = this
              "set_obs": [...] or null,    # observation of that state
              "actions": [...],        # int, or [float] for box actions (float32 values)
              "obs": [[...], ...],     # observation after each step
              "rewards": [...],
              "terminated": [0/1, ...],
              "truncated": [0/1, ...]
            }
          ]
        }
      ]
    }

Float32 values are written as the exact decimal of their float64 widening and float64
values with Python's repr, so that a correctly rounding parser reads back the very bits.
"""

from __future__ import annotations

import json
import math
import os
import warnings

import gymnasium as gym
import numpy as np

warnings.filterwarnings("ignore")  # Gymnasium warns when stepping past termination.

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def f32_list(values) -> list[float]:
    return [float(np.float32(v)) for v in np.asarray(values).ravel()]


def f64_list(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def observe(env) -> list[float]:
    """The observation of env.unwrapped.state, as the env's own step would return it."""
    u = env.unwrapped
    if hasattr(u, "_get_obs"):
        return f32_list(u._get_obs())
    if hasattr(u, "_get_ob"):
        return f32_list(u._get_ob())
    return f32_list(np.array(u.state, dtype=np.float32))


# ---------------------------------------------------------------------------- policies
# A policy is policy(obs, t) -> action; obs is the float32 observation Gymnasium gave.


def random_discrete(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs, t: int(rng.integers(n))


def random_box(low: float, high: float, seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs, t: rng.uniform(low, high, size=1).astype(np.float32)


def cartpole_balance(obs, t):
    x, x_dot, theta, theta_dot = obs
    return int(0.05 * x + 0.3 * x_dot + 5.0 * theta + 1.0 * theta_dot > 0)


def pendulum_spin(obs, t):
    # Full torque along the motion: spins up to the speed limit.
    return np.array([2.0 if obs[2] >= 0 else -2.0], dtype=np.float32)


def acrobot_pump(obs, t):
    # Torque along the second joint's velocity pumps energy in.
    return 2 if obs[5] > 0 else 0


def mountain_car_pump(obs, t):
    return 2 if obs[1] >= 0 else 0


def mcc_pump(magnitude: float):
    def policy(obs, t):
        return np.array([magnitude if obs[1] >= 0 else -magnitude], dtype=np.float32)

    return policy


def hold_then(action, steps: int, then):
    def policy(obs, t):
        return action if t < steps else then(obs, t)

    return policy


# -------------------------------------------------------------------------- recording


def apply_physics(env, env_id: str, physics: dict) -> None:
    u = env.unwrapped
    names = {
        # Gymnasium's attribute names; the Rust names are the same, lower-cased.
        "Acrobot-v1": {
            "link_length_1": "LINK_LENGTH_1",
            "link_mass_1": "LINK_MASS_1",
            "link_mass_2": "LINK_MASS_2",
            "link_com_pos_1": "LINK_COM_POS_1",
            "link_com_pos_2": "LINK_COM_POS_2",
            "link_moi": "LINK_MOI",
            "dt": "dt",
        },
    }.get(env_id, {})
    for name, value in physics.items():
        attr = names.get(name, name)
        if not hasattr(u, attr):
            raise ValueError(f"{env_id} has no attribute {attr}")
        setattr(u, attr, value)
    if env_id == "CartPole-v1":
        # Derived in __init__; recompute as __init__ does.
        u.total_mass = u.masspole + u.masscart
        u.polemass_length = u.masspole * u.length


def space_json(space) -> dict:
    if isinstance(space, gym.spaces.Discrete):
        assert int(space.start) == 0
        return {"type": "discrete", "n": int(space.n)}
    assert isinstance(space, gym.spaces.Box) and space.dtype == np.float32

    def bound(v):
        v = float(v)
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")

    return {
        "type": "box",
        "low": [bound(v) for v in space.low.ravel()],
        "high": [bound(v) for v in space.high.ravel()],
    }


def to_action(action):
    if isinstance(action, np.ndarray):
        return f32_list(action)
    return int(action)


def record_episode(env, seed, policy, set_state=None, extra_steps=0) -> dict:
    obs, _ = env.reset(seed=seed)
    ep = {
        "seed": seed,
        "reset_obs": f32_list(obs),
        "reset_state": f64_list(env.unwrapped.state),
        "set_state": None,
        "set_obs": None,
    }
    if set_state is not None:
        env.unwrapped.state = np.array(set_state, dtype=np.float64)
        ep["set_state"] = f64_list(set_state)
        ep["set_obs"] = observe(env)
        obs = np.array(ep["set_obs"], dtype=np.float32)
    actions, all_obs, rewards, terms, truncs = [], [], [], [], []
    t, after = 0, 0
    while True:
        action = policy(obs, t)
        obs, reward, terminated, truncated, _ = env.step(action)
        actions.append(to_action(action))
        all_obs.append(f32_list(obs))
        rewards.append(float(reward))
        terms.append(int(bool(terminated)))
        truncs.append(int(bool(truncated)))
        t += 1
        if terminated or truncated:
            if after >= extra_steps:
                break
            after += 1
    ep.update(
        actions=actions,
        obs=all_obs,
        rewards=rewards,
        terminated=terms,
        truncated=truncs,
    )
    return ep


def record_run(env_id: str, name: str, episodes, physics=None) -> dict:
    env = gym.make(env_id)
    physics = physics or {}
    apply_physics(env, env_id, physics)
    run = {"name": name, "physics": physics, "episodes": []}
    for spec in episodes:
        run["episodes"].append(record_episode(env, **spec))
    env.close()
    return run


def ep(seed, policy, set_state=None, extra_steps=0) -> dict:
    return dict(seed=seed, policy=policy, set_state=set_state, extra_steps=extra_steps)


def cartpole_runs(env_id):
    return [
        record_run(env_id, "random", [
            ep(0, random_discrete(2, 100)),
            ep(1, random_discrete(2, 101)),
            ep(None, random_discrete(2, 102)),  # reset() continues the seeded RNG
        ]),
        record_run(env_id, "balance-to-time-limit", [
            ep(10, cartpole_balance),
            ep(11, cartpole_balance),
        ]),
        record_run(env_id, "steps-past-termination", [
            ep(3, random_discrete(2, 103), extra_steps=4),
        ]),
        record_run(env_id, "set-state", [
            ep(4, random_discrete(2, 104), set_state=[0.1, -0.2, 0.05, 0.3]),
            ep(5, cartpole_balance, set_state=[-1.5, 0.4, -0.1, 0.2]),
        ]),
        record_run(env_id, "physics", [
            ep(20, cartpole_balance),
            ep(21, random_discrete(2, 105)),
        ], physics={"length": 1.0, "masspole": 0.2, "masscart": 0.8,
                    "force_mag": 12.0, "gravity": 9.81, "tau": 0.01}),
    ]


def pendulum_runs(env_id):
    return [
        record_run(env_id, "random", [
            ep(0, random_box(-2.0, 2.0, 200)),
            ep(1, random_box(-2.0, 2.0, 201)),
            ep(None, random_box(-2.0, 2.0, 202)),
        ]),
        record_run(env_id, "out-of-range-actions", [
            ep(2, random_box(-4.0, 4.0, 203)),
        ]),
        record_run(env_id, "spin-to-speed-limit", [
            ep(3, pendulum_spin),
        ]),
        record_run(env_id, "set-state", [
            ep(5, random_box(-2.0, 2.0, 204), set_state=[math.pi - 0.05, 7.5]),
            ep(6, pendulum_spin, set_state=[-7.0, -3.0]),
        ]),
        record_run(env_id, "physics", [
            ep(7, pendulum_spin),
            ep(8, random_box(-3.0, 3.0, 205)),
        ], physics={"g": 9.81, "m": 1.3, "l": 0.7, "max_torque": 2.5,
                    "max_speed": 9.0, "dt": 0.04}),
    ]


def acrobot_runs(env_id):
    return [
        record_run(env_id, "random-to-time-limit", [
            ep(0, random_discrete(3, 300)),
        ]),
        record_run(env_id, "pump-to-goal", [
            ep(2, acrobot_pump),
            ep(3, acrobot_pump),
            ep(None, acrobot_pump),
        ]),
        record_run(env_id, "set-state", [
            ep(6, acrobot_pump, set_state=[0.5, -0.3, 1.0, -2.0]),
            ep(9, random_discrete(3, 301), set_state=[3.0, -3.0, 12.4, -28.2]),
        ]),
        record_run(env_id, "physics", [
            ep(7, acrobot_pump),
            ep(8, random_discrete(3, 302)),
        ], physics={"link_length_1": 1.2, "link_mass_1": 0.8, "link_mass_2": 1.3,
                    "link_com_pos_1": 0.45, "link_com_pos_2": 0.6, "link_moi": 0.9,
                    "dt": 0.15}),
    ]


def mountain_car_runs(env_id):
    return [
        record_run(env_id, "random-to-time-limit", [
            ep(0, random_discrete(3, 400)),
            ep(None, random_discrete(3, 401)),
        ]),
        record_run(env_id, "pump-to-goal", [
            ep(2, mountain_car_pump),
            ep(3, mountain_car_pump),
        ]),
        record_run(env_id, "left-wall", [
            ep(4, hold_then(0, 30, mountain_car_pump), set_state=[-1.15, -0.06]),
        ]),
        record_run(env_id, "physics", [
            ep(5, mountain_car_pump),
            ep(6, random_discrete(3, 402)),
        ], physics={"force": 0.0015, "gravity": 0.002}),
    ]


def mountain_car_continuous_runs(env_id):
    return [
        record_run(env_id, "random-to-time-limit", [
            ep(0, random_box(-1.0, 1.0, 500)),
        ]),
        record_run(env_id, "pump-to-goal", [
            ep(1, mcc_pump(1.0)),
            ep(2, mcc_pump(0.6)),
            ep(None, mcc_pump(1.0)),
        ]),
        record_run(env_id, "pump-beyond-bounds", [
            ep(3, mcc_pump(1.7)),
        ]),
        record_run(env_id, "random-beyond-bounds", [
            ep(10, random_box(-1.5, 1.5, 501)),
        ]),
        record_run(env_id, "left-wall", [
            ep(4, hold_then(np.array([-1.0], dtype=np.float32), 25, mcc_pump(1.0)),
               set_state=[-1.1, -0.05]),
        ]),
        record_run(env_id, "physics", [
            ep(5, mcc_pump(1.0)),
        ], physics={"power": 0.002}),
    ]


ENVS = {
    "CartPole-v1": cartpole_runs,
    "Pendulum-v1": pendulum_runs,
    "Acrobot-v1": acrobot_runs,
    "MountainCar-v0": mountain_car_runs,
    "MountainCarContinuous-v0": mountain_car_continuous_runs,
}


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    for env_id, make_runs in ENVS.items():
        spec = gym.spec(env_id)
        env = gym.make(env_id)
        runs = make_runs(env_id)
        doc = {
            "schema": 1,
            "env_id": env_id,
            "gymnasium": gym.__version__,
            "numpy": np.__version__,
            "max_episode_steps": spec.max_episode_steps,
            "observation_space": space_json(env.observation_space),
            "action_space": space_json(env.action_space),
            "runs": runs,
        }
        path = os.path.join(OUT_DIR, f"{env_id}.json")
        with open(path, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
        endings = [
            (len(e["actions"]), "T" if any(e["terminated"]) else "", "t" if any(e["truncated"]) else "")
            for r in runs
            for e in r["episodes"]
        ]
        print(f"{env_id}: {os.path.getsize(path)} bytes, episodes (steps, Terminated/truncated): {endings}")


if __name__ == "__main__":
    main()
