"""The run folder: the one writer of a training run's folder and the one reader of any run folder.

A training run folder holds ``policy.zip`` (+ ``vec_normalize.pkl``) for ``PPO.load``, ``config.yml`` (the
resolved config; ``--config-file`` replays it), ``progress.csv`` and TensorBoard events per iteration,
``learning_curve.png``, ``demos/`` (imitation's HF-datasets format) and ``results.json``, written last: a
folder without it is not a finished run. A fine-tuning run (``sb3_il.finetune``) has the same layout with
its own config and results; :func:`read_run` tells them apart and checks either before anyone uses it.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import KVWriter, Logger, configure

from sb3_il.config import EnvSpec, FinetuneConfig, TrainConfig, read_config_file
from sb3_il.dagger import RunResult, train
from sb3_il.demos import Demonstrations, load_demos
from sb3_il.envs import check_env_fits, make_env, wrapper_names
from sb3_il.errors import UserError, first_line
from sb3_il.experts import expert_available, expert_files
from sb3_il.files import staged_dir, write_json, write_yaml
from sb3_il.inputs import number, read_mapping
from sb3_il.plots import learning_curve
from sb3_il.policy import POLICY_FILE, ActFn
from sb3_il.recipe import VERSION as RECIPE_VERSION

CONFIG_FILE, RESULTS_FILE = "config.yml", "results.json"
#: Keys every finished run's results.json holds, by kind of run.
REQUIRED = {
    "imitation": ("mean_return", "std_return", "eval_episodes", "expert_return_mean", "pct_expert", "expert_labels"),
    "finetune": ("mode", "curve", "start_return", "final_return", "min_return"),
}


@dataclass
class Run:
    """A finished run folder, checked: its config as the dataclass that made it, and its results."""

    folder: Path
    kind: str  # "imitation" (train) or "finetune"
    config: TrainConfig | FinetuneConfig
    results: dict[str, Any]

    @property
    def env(self) -> EnvSpec:
        """The env its policy acts in, wrappers included."""
        return self.config.env

    @property
    def expert_return(self) -> float | None:
        """The expert's mean return the run recorded (None where it recorded none, or NaN)."""
        value = self.results.get("expert_return_mean" if self.kind == "imitation" else "expert_return")
        return float(value) if value is not None and math.isfinite(value) else None

    @property
    def final_return(self) -> float:
        """The mean return of the policy the run saved, at its last evaluation."""
        return float(self.results["mean_return" if self.kind == "imitation" else "final_return"])

    @property
    def algo(self) -> str:
        """The RL Zoo algo name of what the run saved: a fine-tuned policy is a PPO one."""
        return "ppo" if self.kind == "finetune" else self.config.algo


def run_file(folder: Path, name: str) -> Path:
    """``folder/name`` as a regular file inside the folder; never a link to somewhere else."""
    path = Path(folder) / name
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link; a run folder's files must be its own")
    if not path.is_file():
        raise UserError(f"{folder} is not a finished sb3-il run (no {name}); pass a folder that train wrote")
    return path


def read_run(folder: Path) -> Run:
    """The finished run in ``folder``, or a one-line error saying what is wrong with it."""
    folder = Path(folder)
    whole = folder.resolve()
    if whole.with_name(whole.name + ".lock").exists() and not (folder / RESULTS_FILE).exists():
        raise UserError(f"{folder} is still being written; wait for it to finish")
    run_file(folder, POLICY_FILE)
    values = read_config_file(run_file(folder, CONFIG_FILE))
    results = read_results(folder)
    kind = results.get("kind", "finetune" if "mode" in results else "imitation")  # older folders lack "kind"
    if kind not in REQUIRED:
        raise UserError(f"{folder / RESULTS_FILE}: kind must be one of {', '.join(REQUIRED)}; re-run what wrote it")
    missing = [key for key in REQUIRED[kind] if key not in results]
    if missing:
        raise UserError(f"{folder / RESULTS_FILE} lacks {', '.join(missing)}; re-run what wrote it")
    absent = [key for key in ("env_id", "algo") if key not in values and (kind == "imitation" or key == "env_id")]
    if absent:  # a default here would describe another run
        raise UserError(f"{folder / CONFIG_FILE} lacks {', '.join(absent)}; re-run what wrote it")
    for key in (*REQUIRED[kind], "expert_return", "expert_return_std"):
        if key not in ("mode", "curve"):
            number(results, key, str(folder / RESULTS_FILE))
    if not isinstance(results.get("curve", []), list):
        raise UserError(f"{folder / RESULTS_FILE}: curve must be a list; re-run what wrote it")
    config_class = FinetuneConfig if kind == "finetune" else TrainConfig
    known = {f.name for f in dataclasses.fields(config_class)}
    try:
        config = config_class(**{k: v for k, v in values.items() if k in known})
        config.validate()
    except TypeError as err:
        raise UserError(f"{folder / CONFIG_FILE} is not an sb3-il config ({first_line(err)})") from None
    wrapper_names(config.env_wrapper, f"{folder / CONFIG_FILE}'s env_wrapper")
    return Run(folder, kind, config, results)


def read_results(folder: Path) -> dict[str, Any]:
    """A folder's ``results.json`` as a mapping, or a one-line error."""
    return read_mapping(run_file(folder, RESULTS_FILE), "the run's results")


class OrderedCSV(KVWriter):
    """``progress.csv`` with columns in the order they were first recorded (SB3's writer orders new keys
    by a set difference, which changes from process to process)."""

    def __init__(self, path: Path) -> None:
        self.path, self.columns, self.rows = Path(path), [], []

    def write(self, key_values: dict[str, Any], key_excluded: dict, step: int = 0) -> None:
        row = {k: v for k, v in key_values.items() if "csv" not in (key_excluded.get(k) or ())}
        self.columns += [k for k in row if k not in self.columns]
        self.rows.append(row)
        with self.path.open("w", newline="") as handle:  # rewritten whole when a column is added, like SB3's
            writer = csv.DictWriter(handle, self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        pass


def make_logger(folder: Path) -> Logger:
    """SB3's logger writing TensorBoard events and an ordered ``progress.csv`` into ``folder``."""
    logger = configure(str(folder), ["tensorboard"])
    logger.output_formats.append(OrderedCSV(Path(folder) / "progress.csv"))
    return logger


def resolve(config: TrainConfig, trust_remote_code: bool = False) -> tuple[TrainConfig, Demonstrations | None]:
    """Every check that needs the env, the expert's files or the demonstrations, before a folder is made.

    The config takes the env wrappers the expert's files record (unless given) and, with ``--demos``,
    ``n_demo_steps`` becomes what the dataset holds, at most the requested number: ``config.yml`` replays both.
    """
    whose = "--env-wrapper"
    data_only = config.algo == "bc" and config.demos and not expert_available(config.expert)
    if not config.env_wrapper and config.expert and not config.expert.startswith("callable:") and not data_only:
        whose = f"the expert's ({config.expert}) env_wrapper"
        config = dataclasses.replace(config, env_wrapper=wrapper_names(expert_files(config.expert).env_wrapper, whose))
    check_env_fits(config, whose)
    if not config.demos:
        return config, None
    env = make_env(config.env)
    demos = load_demos(config.demos, env, trust_remote_code)
    env.close()
    held = len(demos.transitions()[0])
    return dataclasses.replace(config, n_demo_steps=min(held, config.n_demo_steps)), demos


def train_run(
    config: TrainConfig,
    run_dir: Path,
    progress: bool = True,
    trust_remote_code: bool = False,
    expert: ActFn | None = None,
    reads: Sequence[Path] = (),
) -> dict[str, Any]:
    """Train into a staged folder and publish it as ``run_dir`` only once ``results.json`` is written.

    ``expert``: an expert object to use instead of loading ``config.expert`` (the Python API's callables).
    ``reads``: files the command read besides ``--demos`` (a replayed config.yml), which it must not replace.
    """
    config, demos = resolve(config, trust_remote_code)
    local_demos = [Path(config.demos)] if config.demos and Path(config.demos).exists() else []
    with staged_dir(run_dir, discard_on=(UserError,), reads=[*reads, *local_demos]) as stage:
        write_yaml(stage / CONFIG_FILE, config.to_dict())
        logger = make_logger(stage)
        try:
            result = train(config, stage, logger, demos, progress, trust_remote_code, expert)
        finally:
            logger.close()
        recipe = RECIPE_VERSION if config.adapt else None
        config = result.config or config  # the recipe resolved: what replays the run (written with the results)
        final = result.curve[-1]
        if not math.isfinite(final.loss):
            raise UserError(f"training diverged (loss {final.loss}); lower --lr (it is {config.lr})")
        curve = result.curve
        learning_curve(
            [s.expert_labels for s in curve],
            [s.mean_return for s in curve],
            [s.std_return for s in curve],
            result.expert_return_mean,
            f"{config.algo} on {config.env_id} ({config.expert})",
            stage / "learning_curve.png",
        )
        results = summarize(config, result) | {"recipe": recipe}
        write_run_files(stage, config.to_dict(), results)
    return results


def write_run_files(folder: Path, config: dict[str, Any], results: dict[str, Any]) -> None:
    """A run's ``config.yml`` and, last (it marks the run finished), its ``results.json``: the one writer of
    both for training and fine-tuning runs."""
    write_yaml(Path(folder) / CONFIG_FILE, config)
    write_json(Path(folder) / RESULTS_FILE, results)


def summarize(config: TrainConfig, result: RunResult) -> dict[str, Any]:
    final = result.curve[-1]
    return {
        "kind": "imitation",
        "algo": config.algo,
        "env_id": config.env_id,
        "expert": config.expert,
        "seed": config.seed,
        "mean_return": final.mean_return,
        "std_return": final.std_return,
        "eval_episodes": config.final_eval_episodes,
        "expert_return_mean": result.expert_return_mean,
        "expert_return_std": result.expert_return_std,
        "pct_expert": final.pct_expert,
        "expert_labels": final.expert_labels,
        "n_demo_episodes": result.n_demo_episodes,
        "demos_source": config.demos or "collected",
        "discrete": result.discrete,
        "env_steps": final.env_steps,
        "selected_iteration": result.selected_iteration,
        "select_by": config.select_by if result.selected_iteration is not None else None,
        "selection_scores": result.selection_scores,
        "grad_steps": final.grad_steps,
        "wall_s": result.total_wall_s,
        "train_wall_s": final.wall_s,
        "curve": [dataclasses.asdict(s) for s in result.curve],
    }
