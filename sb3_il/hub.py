"""Share a run on the Hugging Face Hub the RL Zoo way, and lay a package out as a Hub cache to load it back.

A pushed repo ``USER/{algo}-{env}`` holds ``{algo}-{env}.zip`` (a PPO zip), ``vec_normalize.pkl``,
``config.yml`` (with ``normalize``, as the Zoo writes it), ``results.json``, a model card and a replay
video, so ``sb3_il.experts.load_expert`` (and ``--expert USER/{algo}-{env}``) loads it like any ``sb3/`` repo.
A fine-tuning run (``scripts/finetune.py``) holds a PPO policy, so it goes to ``USER/ppo-{env}``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sb3_il.config import UserError
from sb3_il.envs import make_env
from sb3_il.files import atomic_write, write_json, write_yaml
from sb3_il.policy import POLICY_FILE, VEC_NORMALIZE_FILE, load_learner, predict_fn

ALGO_TAGS = {"bc": "behavior-cloning", "dagger": "dagger"}


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, results) of a finished run folder, or a one-line error saying what is wrong."""
    run_dir = Path(run_dir)
    for name in (POLICY_FILE, "config.yml", "results.json"):
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir} is not a finished sb3-il run (no {name}); pass a folder written by train.py")
    try:
        return yaml.safe_load((run_dir / "config.yml").read_text()), json.loads((run_dir / "results.json").read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise UserError(f"{run_dir} has an unreadable config.yml or results.json ({err})".splitlines()[0]) from None


def is_finetuned(results: dict[str, Any]) -> bool:
    """finetune.py's results carry the fine-tuning mode; train.py's do not."""
    return "mode" in results


def run_algo(config: dict[str, Any], results: dict[str, Any]) -> str:
    """The RL Zoo algo name of what the run saved: a fine-tuned policy is a PPO one."""
    return "ppo" if is_finetuned(results) else config["algo"]


def model_card(repo_id: str, config: dict[str, Any], results: dict[str, Any], has_video: bool) -> str:
    """README.md with the Hub metadata the SB3/Zoo integration reads (library, tags, model-index)."""
    env_id = config["env_id"]
    if is_finetuned(results):
        name, tags = "PPO", ["ppo", "rl-fine-tuning"]
        mean, std = results["curve"][-1]["mean_return"], results["curve"][-1]["std_return"]  # the final evaluation
        title, body = _finetune_card_body(config, results, mean, std)
    else:
        name = "BC" if config["algo"] == "bc" else "DAgger"
        tags = [ALGO_TAGS[config["algo"]]]
        mean, std = results["mean_return"], results["std_return"]
        title, body = _imitation_card_body(config, results)
    metadata = {
        "library_name": "stable-baselines3",
        "tags": [
            env_id,
            "imitation-learning",
            *tags,
            "deep-reinforcement-learning",
            "reinforcement-learning",
            "stable-baselines3",
            "sb3-il",
        ],
        "model-index": [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": "reinforcement-learning", "name": "reinforcement-learning"},
                        "dataset": {"name": env_id, "type": env_id},
                        "metrics": [
                            {
                                "type": "mean_reward",
                                "name": "mean_reward",
                                "verified": False,
                                "value": f"{mean:.2f} +/- {std:.2f}",
                            }
                        ],
                    }
                ],
            }
        ],
    }
    normalize = (
        f'env = VecNormalize.load(load_from_hub("{repo_id}", "{VEC_NORMALIZE_FILE}"), make_vec_env("{env_id}"))\n'
        "env.training = False\n"
        if config.get("normalize")
        else f'env = make_vec_env("{env_id}")\n'
    )
    video = "![replay](replay.mp4)\n\n" if has_video else ""
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False)}---

# {title}

{video}{body}
## Usage

```python
from huggingface_sb3 import load_from_hub
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

{normalize}model = PPO.load(load_from_hub("{repo_id}", "{repo_id.split("/")[1]}.zip"), env=env)
obs = env.reset()
action, _ = model.predict(obs, deterministic=True)
```

or as an expert for further imitation: `python scripts/train.py --env {env_id} --expert {repo_id}`.
"""


def _imitation_card_body(config: dict[str, Any], results: dict[str, Any]) -> tuple[str, str]:
    algo, env_id = config["algo"], config["env_id"]
    loss = "MSE on the expert's actions"
    if config.get("bounded_loss"):
        loss += " (none past an action bound the label sits on)"
    if config.get("jacobian_weight"):  # the labels carried more than actions: say so
        loss += f" plus {config['jacobian_weight']} × MSE on the expert's d action / d observation (Sobolev)"
    net = f"MLP {'×'.join(map(str, config['net_arch']))} ReLU"
    if config.get("ensemble", 1) > 1:  # the zip holds the packed ensemble: say why it is that wide
        packed = "×".join(str(config["ensemble"] * width) for width in config["net_arch"])
        net = f"mean of {config['ensemble']} actors, each an {net}, packed as one {packed} MLP (block-diagonal)"
    labelled = f"{config['steps_per_iter']} learner steps"
    if config.get("candidates_per_label", 1) > 1:  # more env steps than labels: say which were labelled
        visited = config["steps_per_iter"] * config["candidates_per_label"]
        labelled = f"{visited} learner steps (the {config['steps_per_iter']} least covered labelled)"
    if config.get("select_last", 0) > 1 and results.get("selected_iteration") is not None:  # not the last iterate
        labelled += (
            f"; the policy is iteration {results['selected_iteration']}'s, the best of the last "
            f"{config['select_last']} on {config['select_episodes']} validation episodes each (env steps, no labels)"
        )
    title = f"{algo.upper() if algo == 'bc' else 'DAgger'} policy for {env_id}, imitated from `{config['expert']}`"
    return (
        title,
        f"""Trained with sb3-il by {"behavior cloning" if algo == "bc" else "DAgger"} from the
expert [`{config["expert"]}`](https://huggingface.co/{config["expert"]}). It is a plain Stable-Baselines3 `PPO`
model: the actor is the imitation policy, the value head is untrained (fine-tune with RL to fit it).

| | return (mean ± std over {results["eval_episodes"]} episodes) |
|---|---|
| this policy | {results["mean_return"]:.1f} ± {results["std_return"]:.1f} |
| expert `{config["expert"]}` | {results["expert_return_mean"]:.1f} ± {results["expert_return_std"]:.1f} |
| **% of expert** | **{results["pct_expert"]:.1f}** |

Budget: {results["expert_labels"]} expert labels ({results["n_demo_episodes"]} demonstration episodes,
{results["env_steps"]} learner env steps), {results["grad_steps"]} gradient steps; seed {config["seed"]}.
Settings: {net}, Adam lr {config["lr"]}, batch {config["batch_size"]},
{config["grad_steps"]} gradient steps per iteration, {config["n_iters"]} DAgger iterations of
{labelled}, β schedule `{config["beta_schedule"]}`, learning rate
{config.get("lr_schedule", "constant")}; loss: {loss}. The full config is in
`config.yml`; `python scripts/train.py --config-file config.yml` reproduces the run.

![learning curve](learning_curve.png)
""",
    )


def _finetune_card_body(config: dict[str, Any], results: dict[str, Any], mean: float, std: float) -> tuple[str, str]:
    expert = results.get("expert_return")
    expert_row = f"| expert (recorded by the imitation run) | {expert:.1f} |\n" if expert is not None else ""
    title = f"PPO policy for {config['env_id']}, fine-tuned from an imitation policy"
    return (
        title,
        f"""Fine-tuned with sb3-il's `scripts/finetune.py` (mode `{results["mode"]}`) for
{config["timesteps"]} PPO steps from `{results["source"]}`; seed {config["seed"]}. A plain Stable-Baselines3
`PPO` model.

| | return (deterministic, mean over {config["eval_episodes"]} episodes on fixed seeds) |
|---|---|
| start (the imitation policy) | {results["start_return"]:.1f} |
| lowest evaluation during fine-tuning | {results["min_return"]:.1f} |
| **this policy** | **{mean:.1f} ± {std:.1f}** |
{expert_row}
PPO hyperparameters and the preparation's settings are in `config.yml`.

![fine-tuning curve](finetune_curve.png)
""",
    )


def record_video(run_dir: Path, env_id: str, path: Path, seed: int = 0, max_steps: int = 1000) -> str | None:
    """Render one deterministic episode to ``path``; returns why not if rendering is unavailable here."""
    import imageio.v2 as imageio

    try:
        env = make_env(env_id, render_mode="rgb_array")
        act = predict_fn(*load_learner(run_dir))
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
        for _ in range(max_steps):
            obs, _, terminated, truncated, _ = env.step(act(obs[None])[0])
            frames.append(env.render())
            if terminated or truncated:
                break
        fps = env.metadata.get("render_fps", 30)
        env.close()
    except Exception as err:  # GL/EGL/pygame failures come in many types; the message says which
        return f"{type(err).__name__}: {err}".splitlines()[0]
    atomic_write(
        path,
        lambda p: imageio.mimsave(p, [np.asarray(f) for f in frames], format="FFMPEG", fps=fps, macro_block_size=1),
    )
    return None


def package_run(run_dir: Path, repo_id: str, out_dir: Path, video_steps: int = 1000) -> Path:
    """Write exactly the files a push uploads into ``out_dir`` (replacing it); ``video_steps=0``: no video."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config, results = read_run(run_dir)
    owner, _, name = repo_id.partition("/")
    algo = run_algo(config, results)
    if not owner or not name or "/" in name:
        raise UserError(f"--repo-id {repo_id!r} must be USER/NAME, e.g. me/{algo}-{config['env_id']}")
    if not name.startswith(f"{algo}-"):
        raise UserError(
            f"name the repo {owner}/{algo}-{config['env_id']} (RL Zoo naming: ALGO-ENV), "
            f"so that load_from_hub users and --expert can tell how to load it"
        )
    # The Zoo's config.yml says whether vec_normalize.pkl belongs to the model (load_expert reads it).
    config = config | {"normalize": (run_dir / VEC_NORMALIZE_FILE).exists()}
    stage = out_dir.with_name(out_dir.name + ".incomplete")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    shutil.copy2(run_dir / POLICY_FILE, stage / f"{name}.zip")
    for extra in (VEC_NORMALIZE_FILE, "learning_curve.png", "finetune_curve.png"):
        if (run_dir / extra).exists():
            shutil.copy2(run_dir / extra, stage / extra)
    write_yaml(stage / "config.yml", config)
    write_json(stage / "results.json", {k: v for k, v in results.items() if k != "curve"} | {"repo_id": repo_id})
    has_video = False
    if video_steps > 0:
        why_not = record_video(run_dir, config["env_id"], stage / "replay.mp4", config["seed"], video_steps)
        has_video = why_not is None
        if why_not:
            print(
                f"note: no replay.mp4 ({why_not}); set MUJOCO_GL=egl (or osmesa) with its system library "
                "installed to render. Everything else is packaged."
            )
    (stage / "README.md").write_text(model_card(repo_id, config, results, has_video))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(stage, out_dir)
    return out_dir


def as_hub_cache(package: Path, repo_id: str, cache_dir: Path, revision: str = "0" * 40) -> Path:
    """Lay ``package`` out as a Hugging Face cache entry, so the real offline ``load_from_hub`` reads it."""
    repo_dir = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    shutil.copytree(package, snapshot, dirs_exist_ok=True)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


def push(package: Path, repo_id: str, private: bool = False) -> str:
    """Upload ``package`` with ``huggingface_hub``; the token comes from HF_TOKEN or ``huggingface-cli login``."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
        commit = api.upload_folder(
            folder_path=str(package), repo_id=repo_id, repo_type="model", commit_message="Upload sb3-il policy"
        )
    except Exception as err:  # auth, network and permission errors from the Hub client
        raise UserError(
            f"upload to {repo_id} failed: {err}".splitlines()[0] + " (log in with `huggingface-cli "
            "login` or set HF_TOKEN; check the repo id)"
        ) from None
    return str(getattr(commit, "commit_url", commit))
