"""The Hub model card (README.md) of a run: YAML metadata the SB3/Zoo integration reads, then what a reader needs.

The text comes from the run's typed config and results (:class:`sb3_il.runs.Run`): the settings it names are
the config's fields, so a card cannot describe a default the run did not use.
"""

from __future__ import annotations

from typing import Any

import yaml

from sb3_il.config import EnvSpec, FinetuneConfig, TrainConfig
from sb3_il.policy import VEC_NORMALIZE_FILE
from sb3_il.runs import Run

ALGO_TAGS = {"bc": "behavior-cloning", "dagger": "dagger", "ppo": "rl-fine-tuning"}
INSTALL = "pip install sb3-il"


def metadata(repo_id: str, run: Run, mean: float, std: float, dataset: str | None = None) -> dict[str, Any]:
    env_id = run.config.env_id
    meta: dict[str, Any] = {
        "library_name": "stable-baselines3",
        "license": "mit",
        "tags": [env_id, "imitation-learning", ALGO_TAGS[run.algo], *(["ppo"] if run.algo == "ppo" else []),
                 "deep-reinforcement-learning", "reinforcement-learning", "stable-baselines3", "sb3-il"],
        "model-index": [{
            "name": {"bc": "BC", "dagger": "DAgger", "ppo": "PPO"}[run.algo],
            "results": [{
                "task": {"type": "reinforcement-learning", "name": "reinforcement-learning"},
                "dataset": {"name": env_id, "type": env_id},
                "metrics": [{"type": "mean_reward", "name": "mean_reward", "verified": False,
                             "value": f"{mean:.2f} +/- {std:.2f}"}],
            }],
        }],
    }  # fmt: skip
    source = str(run.results.get("source") or "")
    if run.kind == "finetune" and source.count("/") == 1 and not source.startswith((".", "/")):
        meta["base_model"] = source  # fine-tuned from a Hub repo
    if dataset:
        meta["datasets"] = [dataset]
    return meta


def model_card(repo_id: str, run: Run, has_video: bool, dataset: str | None = None) -> str:
    """README.md for ``repo_id``: metadata, what the policy is and how well it does, the settings, usage."""
    if run.kind == "finetune":
        mean, std = run.results["curve"][-1]["mean_return"], run.results["curve"][-1]["std_return"]
        title, body = finetune_body(run.config, run.results, mean, std)
    else:
        mean, std = run.results["mean_return"], run.results["std_return"]
        title, body = imitation_body(run.config, run.results)
    video = '<video src="replay.mp4" controls autoplay loop muted></video>\n\n' if has_video else ""
    settings = yaml.safe_dump(_settings(run.config), sort_keys=False).strip()
    return f"""---
{yaml.safe_dump(metadata(repo_id, run, mean, std, dataset), sort_keys=False)}---

# {title}

{video}{body}
## Settings

```yaml
{settings}
```

## Usage

```python
{usage(repo_id, run.env, (run.folder / VEC_NORMALIZE_FILE).exists())}
```

Made with sb3-il (`{INSTALL}`), imitation learning for Stable-Baselines3; MIT license. As an expert for
further imitation: `sb3-il train --env {run.config.env_id} --expert {repo_id}`.
"""


def _settings(config: TrainConfig | FinetuneConfig) -> dict[str, Any]:
    values = config.to_dict() if isinstance(config, TrainConfig) else dict(vars(config))
    return {k: v for k, v in values.items() if k not in ("demos", "background_eval")}


def usage(repo_id: str, spec: EnvSpec, normalize: bool) -> str:
    """The card's snippet: load the policy and its env, with the wrappers the policy acts under."""
    classes = [name.rsplit(".", 1) for name in spec.wrappers]
    imports = "".join(f"from {module} import {cls}\n" for module, cls in classes)
    wrapped = "e"
    for _, cls in classes:
        wrapped = f"{cls}({wrapped})"
    make = f'make_vec_env("{spec.id}"' + (f", wrapper_class=lambda e: {wrapped})" if classes else ")")
    env = (
        f'env = VecNormalize.load(load_from_hub("{repo_id}", "{VEC_NORMALIZE_FILE}"), {make})\nenv.training = False\n'
        if normalize
        else f"env = {make}\n"
    )
    return f"""{imports}from huggingface_sb3 import load_from_hub
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

{env}model = PPO.load(load_from_hub("{repo_id}", "{repo_id.split("/")[1]}.zip"), env=env)
obs = env.reset()
action, _ = model.predict(obs, deterministic=True)"""


def loss_text(config: TrainConfig, discrete: bool) -> str:
    if discrete:
        return "cross-entropy on the expert's actions"
    loss = "MSE on the expert's actions"
    if config.bounded_loss:
        loss += " (none past an action bound the label sits on)"
    if config.jacobian_weight:  # the labels carried more than actions: say so
        loss += f" plus {config.jacobian_weight} × MSE on the expert's d action / d observation (Sobolev)"
    return loss


def net_text(config: TrainConfig) -> str:
    net = f"MLP {'×'.join(map(str, config.net_arch))} ReLU"
    if config.ensemble > 1:  # the zip holds the packed ensemble: say why it is that wide
        packed = "×".join(str(config.ensemble * width) for width in config.net_arch)
        net = f"mean of {config.ensemble} actors, each an {net}, packed as one {packed} MLP (block-diagonal)"
    return net


def data_text(config: TrainConfig, results: dict[str, Any]) -> str:
    """Where the labels came from: the demonstrations alone (BC), or DAgger's iterations."""
    if config.algo == "bc":
        return f"one fit on {config.n_demo_steps} expert transitions"
    labelled = f"{config.steps_per_iter} learner steps"
    if config.candidates_per_label > 1:  # more env steps than labels: say which were labelled
        visited = config.steps_per_iter * config.candidates_per_label
        labelled = f"{visited} learner steps (the {config.steps_per_iter} least covered labelled)"
    text = f"{config.n_iters} DAgger iterations of {labelled}, β schedule `{config.beta_schedule}`"
    if config.select_last > 1 and results.get("selected_iteration") is not None:  # not the last iterate
        how = (
            f"on {config.select_episodes} validation episodes each (reads the env's reward)"
            if config.select_by == "return"
            else "by its imitation loss on the states it visited (reward-free)"
        )
        chosen = results["selected_iteration"]
        text += f"; the policy is iteration {chosen}'s, the best of the last {config.select_last} {how}"
    return text


def imitation_body(config: TrainConfig, results: dict[str, Any]) -> tuple[str, str]:
    method = "behavior cloning" if config.algo == "bc" else "DAgger"
    title = f"{'BC' if config.algo == 'bc' else 'DAgger'} policy for {config.env_id}, imitated from `{config.expert}`"
    discrete = results.get("discrete", False)
    return (
        title,
        f"""Trained with sb3-il by {method} from the expert [`{config.expert}`](https://huggingface.co/{config.expert}).
It is a plain Stable-Baselines3 `PPO` model: the actor is the imitation policy, the value head is untrained
(fine-tune with RL to fit it).

| | return (mean ± std over {results["eval_episodes"]} episodes) |
|---|---|
| this policy | {results["mean_return"]:.1f} ± {results["std_return"]:.1f} |
| expert `{config.expert}` | {results["expert_return_mean"]:.1f} ± {results.get("expert_return_std", 0.0):.1f} |
| **% of expert** | **{results["pct_expert"]:.1f}** |

Budget: {results["expert_labels"]} expert labels ({data_text(config, results)}), {results.get("grad_steps")}
gradient steps; seed {config.seed}. Net: {net_text(config)}; Adam lr {config.lr} ({config.lr_schedule}),
batch {config.batch_size}, {config.grad_steps} gradient steps per fit; loss: {loss_text(config, discrete)}.
`sb3-il train --config-file config.yml` reproduces the run.

![learning curve](learning_curve.png)
""",
    )


def finetune_body(config: FinetuneConfig, results: dict[str, Any], mean: float, std: float) -> tuple[str, str]:
    expert = results.get("expert_return")
    expert_row = f"| expert (recorded by the imitation run) | {expert:.1f} |\n" if expert is not None else ""
    title = f"PPO policy for {config.env_id}, fine-tuned from an imitation policy"
    return (
        title,
        f"""Fine-tuned with sb3-il (mode `{results["mode"]}`) for {config.timesteps} PPO steps from
`{results["source"]}`; seed {config.seed}. A plain Stable-Baselines3 `PPO` model.

| | return (deterministic, mean over {config.eval_episodes} episodes on fixed seeds) |
|---|---|
| start (the imitation policy) | {results["start_return"]:.1f} |
| lowest evaluation during fine-tuning | {results["min_return"]:.1f} |
| **this policy** | **{mean:.1f} ± {std:.1f}** |
{expert_row}
![fine-tuning curve](finetune_curve.png)
""",
    )
