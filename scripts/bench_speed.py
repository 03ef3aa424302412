"""Where sb3-il's time goes, each figure against a peer measured in the same run (the machine is noisy).

    python scripts/bench_speed.py                 # all parts (a few minutes on one core)
    python scripts/bench_speed.py --parts step    # one part: step, ppo, process, peer

- step: µs per gradient step of the article net (2x64, batch 100, Hopper's 11 -> 3) in ``sb3_il.bc.fit``,
  against plain autograd with ``torch.optim.Adam`` at its defaults;
- ppo: PPO fine-tuning steps/s with sb3-il's optimizer settings against SB3's default Adam, same start;
- process: ``sb3-il train --algo dagger --env Ant-v4`` as a whole process, against stepping the same envs the
  same number of times with random actions (the floor no policy can beat);
- peer: BC and DAgger against ``imitation`` on Hopper-v4 (``benchmark --peer``, one seed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch as th

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeats: int = 5) -> float:  # noqa: ANN001 - a timing helper
    """The fastest of ``repeats`` calls, in seconds: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def step_part(steps: int = 2000) -> dict[str, float]:
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_il.bc import Adam, fit
    from sb3_il.buffer import ReplayBuffer
    from sb3_il.config import TrainConfig
    from sb3_il.policy import Learner, actor_parameters, make_learner

    env = make_vec_env("Hopper-v4", 1).envs[0]
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(11_000, (11,), (3,))
    buffer.add(rng.normal(size=(11_000, 11)), rng.uniform(-1, 1, (11_000, 3)))
    config = TrainConfig(env_id="Hopper-v4", grad_steps=steps)
    learner = Learner(make_learner(env, [64, 64], 0).policy)
    optimizer = Adam(sum(p.numel() for p in actor_parameters(learner.policy)), lr=5e-3)
    generator = th.Generator().manual_seed(0)
    ours = best_of(lambda: fit(learner, optimizer, buffer, config, generator)) / steps

    net = th.nn.Sequential(th.nn.Linear(11, 64), th.nn.ReLU(), th.nn.Linear(64, 64), th.nn.ReLU(), th.nn.Linear(64, 3))
    plain_optimizer = th.optim.Adam(net.parameters(), lr=5e-3)

    def plain() -> None:
        obs, acts, _ = buffer.sample(steps * 100, generator)
        for o, a in zip(obs.split(100), acts.split(100), strict=True):
            plain_optimizer.zero_grad()
            th.nn.functional.mse_loss(net(o), a).backward()
            plain_optimizer.step()

    reference = best_of(plain) / steps
    return {"ours_us": ours * 1e6, "autograd_adam_us": reference * 1e6, "speedup": reference / ours}


def ppo_part(timesteps: int = 4096) -> dict[str, float]:
    from stable_baselines3 import PPO

    from sb3_il.anchored_ppo import use_fused_adam

    rates = {}
    for name in ("sb3_default", "sb3_il"):
        model = PPO("MlpPolicy", "Hopper-v4", n_steps=2048, batch_size=64, seed=0, device="cpu")
        if name == "sb3_il":
            use_fused_adam(model)
        model.learn(2048)  # warm up: first rollout, imports
        elapsed = best_of(lambda m=model: m.learn(timesteps, reset_num_timesteps=False), 3)
        rates[name] = timesteps / elapsed
    return {"ppo_steps_per_s_default": rates["sb3_default"], "ppo_steps_per_s_ours": rates["sb3_il"],
            "speedup": rates["sb3_il"] / rates["sb3_default"]}  # fmt: skip


def process_part() -> dict[str, float]:
    """The whole ``sb3-il train`` process against the env's own stepping time for the same number of steps.

    Its steps: the demonstrations, the learner's collection (``env_steps``) and every evaluation episode
    (5 after each iteration, 20 at the end), each counted at Ant-v4's 1000-step limit (imitation policies of
    this expert do not fall: the zoo table's fall rate is 0%). The expert's own evaluation is cached. The
    process evaluates on the second core while it trains, so the floor is given for one core and for two.
    """
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "sb3_il", "train", "--algo", "dagger", "--env", "Ant-v4", "--quiet",
                   "--runs-dir", tmp]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, cwd=tmp)  # fills the expert-return cache
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=tmp)
        whole = time.perf_counter() - start
        results = json.loads((Path(tmp) / "dagger-Ant-v4-s0" / "results.json").read_text())
    config = {"n_iters": 10, "eval_episodes": 5, "final_eval_episodes": 20}
    episodes = config["n_iters"] * config["eval_episodes"] + config["final_eval_episodes"]
    steps = results["curve"][0]["expert_labels"] + results["env_steps"] + 1000 * episodes
    floor = env_floor("Ant-v4", steps)
    return {"process_s": whole, "env_steps": steps, "floor_1core_s": floor, "ratio_1core": whole / floor,
            "ratio_2cores": whole / (floor / 2)}  # fmt: skip


def env_floor(env_id: str, steps: int) -> float:
    """Seconds to step ``env_id`` ``steps`` times with random actions, resetting when an episode ends."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - start


def peer_part() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "sb3_il", "benchmark", "--track", "article", "--envs", "Hopper-v4",
                   "--seeds", "0", "--peer", "--out", str(Path(tmp) / "peer")]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, cwd=tmp)
        rows = (Path(tmp) / "peer" / "results.csv").read_text().splitlines()
    import csv

    table = list(csv.DictReader(rows))
    out = {}
    for algo in ("bc", "dagger"):
        ours = next(r for r in table if r["algo"] == algo and r["impl"] == "sb3_il")
        theirs = next(r for r in table if r["algo"] == algo and r["impl"] == "imitation")
        out[f"{algo}_speedup"] = float(theirs["train_wall_s"]) / float(ours["train_wall_s"])
        out[f"{algo}_return_ratio"] = float(ours["pct_expert"]) / float(theirs["pct_expert"])
    return out


PARTS = {"step": step_part, "ppo": ppo_part, "process": process_part, "peer": peer_part}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    args = parser.parse_args()
    th.set_num_threads(1)
    for part in args.parts:
        result = PARTS[part]()
        print(f"{part:8s} " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in result.items()), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
