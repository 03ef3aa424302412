"""Expert demonstrations and labels as data: collected with ``imitation.data.rollout``, stored as HF datasets
(arrow/parquet: data only, no code), read back from a folder, the Hub (``hf://datasets/USER/NAME[@rev]``) or
Minari (``minari:DATASET_ID``).

Two kinds of rows: *trajectories* (imitation's schema, one episode a row: ``obs``, ``acts``, ``terminal``,
``rews``; the published HumanCompatibleAI datasets use it) and *labels* (one labelled state a row: ``obs``,
``acts``, ``iteration``, ``beta``, ``episode``, ``step``: what DAgger asked the expert). Reading never decodes
imitation's jsonpickled ``infos``, which could build arbitrary objects: they are dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from imitation.data import rollout
from imitation.data.types import Trajectory, TrajectoryWithRew
from imitation.data.wrappers import RolloutInfoWrapper
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_il.config import EnvSpec
from sb3_il.envs import make_env
from sb3_il.errors import UserError, first_line
from sb3_il.experts import Expert, action_problem
from sb3_il.files import staged_dir, write_json
from sb3_il.inputs import read_mapping
from sb3_il.policy import ActFn


def with_noise(act: ActFn, noise: float, space: gym.Space, rng: np.random.Generator) -> ActFn:
    """``act`` with its executed actions perturbed: Gaussian noise of std ``noise`` × half the action range
    (clipped to the bounds) for Box, a uniformly random action with probability ``noise`` for Discrete.

    Perturbing what is executed, while labels stay the expert's clean actions, shows the learner states
    just off the expert's path together with the action that recovers from them (DART-style).
    """
    if noise <= 0:
        return act
    if isinstance(space, gym.spaces.Discrete):

        def noisy(obs: np.ndarray) -> np.ndarray:
            actions = act(obs)
            flip = rng.random(len(actions)) < noise
            return np.where(flip, rng.integers(space.n, size=len(actions)), actions)

        return noisy
    half_range = (space.high - space.low) / 2

    def noisy(obs: np.ndarray) -> np.ndarray:
        actions = act(obs)
        return np.clip(actions + rng.normal(size=actions.shape) * noise * half_range, space.low, space.high)

    return noisy


def collect_demos(
    expert: Expert, env_id: EnvSpec | str, min_steps: int, seed: int, noise: float = 0.0
) -> Sequence[Trajectory]:
    """Whole expert episodes until at least ``min_steps`` transitions (imitation's ``make_min_timesteps``).

    With ``noise`` the executed actions are perturbed (:func:`with_noise`) and the stored actions are the
    expert's clean labels for the visited states.
    """
    venv = DummyVecEnv([lambda: RolloutInfoWrapper(make_env(env_id))])
    venv.seed(seed)
    act = with_noise(expert, noise, venv.action_space, np.random.default_rng(seed + 1))
    try:
        trajectories = rollout.rollout(
            lambda obs, states, starts: (act(obs), None),
            venv,
            rollout.make_min_timesteps(min_steps),
            rng=np.random.default_rng(seed),
            unwrap=True,
            verbose=False,
        )
    finally:
        venv.close()
    if noise > 0:
        trajectories = [dataclasses.replace(t, acts=expert(t.obs[:-1])) for t in trajectories]
    return trajectories


PROVENANCE_FILE = "provenance.json"


@dataclass
class Demonstrations:
    """What a run fits on first: expert episodes, then labelled states that belong to no expert episode."""

    trajectories: list[Trajectory]
    label_obs: np.ndarray | None = None
    label_acts: np.ndarray | None = None
    #: Where they came from (a folder, hf://..., minari:...) and the provenance it recorded, if any.
    source: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def transitions(self) -> tuple[np.ndarray, np.ndarray]:
        """(observations, actions): every episode's transitions in order, then the labelled states."""
        obs, acts = transitions(self.trajectories) if self.trajectories else (None, None)
        if self.label_obs is not None:
            obs = self.label_obs if obs is None else np.concatenate([obs, self.label_obs.astype(obs.dtype)])
            acts = self.label_acts if acts is None else np.concatenate([acts, self.label_acts.astype(acts.dtype)])
        return obs, acts


@dataclass
class LabelLog:
    """Every state DAgger had the expert label, with where it was met; saved as the run's ``labels/``."""

    rows: list[dict[str, np.ndarray]] = field(default_factory=list)

    def add(self, obs: np.ndarray, acts: np.ndarray, iteration: int, beta: float, episode: np.ndarray,
            step: np.ndarray) -> None:  # fmt: skip
        n = len(obs)
        self.rows.append({"obs": obs, "acts": acts, "iteration": np.full(n, iteration, np.int32),
                          "beta": np.full(n, beta, np.float32), "episode": episode, "step": step})  # fmt: skip

    def columns(self) -> dict[str, np.ndarray]:
        return {key: np.concatenate([row[key] for row in self.rows]) for key in self.rows[0]} if self.rows else {}


def save_demos(path: Path, trajectories: Sequence[Trajectory]) -> None:
    """imitation's format (``imitation.data.serialize``) in a new folder (:func:`sb3_il.files.staged_dir`).

    ``datasets`` is imported here rather than with the module: with aiohttp and pandas it takes 0.5-1 s,
    which a run saves by calling this in its evaluation worker.
    """
    import datasets
    from imitation.data import serialize

    datasets.disable_progress_bars()
    with staged_dir(path) as stage:
        serialize.save(stage, trajectories)


def save_labels(path: Path, labels: LabelLog) -> None:
    """DAgger's labelled states as an HF dataset folder (one row per state)."""
    import datasets

    columns = labels.columns()
    if not columns:
        return
    datasets.disable_progress_bars()
    with staged_dir(path) as stage:
        data = {k: v.tolist() if k in ("obs", "acts") else v for k, v in columns.items()}
        datasets.Dataset.from_dict(data).save_to_disk(str(stage))


def write_provenance(folders: Sequence[Path], provenance: dict[str, Any]) -> None:
    """``provenance.json`` beside the data in each existing folder: who labelled it, on what, with what."""
    for folder in folders:
        if folder.is_dir():
            write_json(folder / PROVENANCE_FILE, provenance)


def load_demos(source: str | Path, env: gym.Env | None = None, trust_remote_code: bool = False) -> Demonstrations:
    """Demonstrations from a folder (an HF dataset, or a dataset repo's files), ``hf://datasets/USER/NAME[@rev]``
    or ``minari:DATASET_ID``; with ``env``, a one-line error unless they fit its spaces.

    imitation's older single-file formats are pickles, which could run code: they load only with
    ``trust_remote_code``.
    """
    text = str(source)
    if text.startswith("minari:"):
        demos = _from_minari(text.removeprefix("minari:"))
    elif text.startswith("hf://datasets/"):
        demos = _from_folder(_hub_snapshot(text), text)
    elif Path(text).is_file():
        demos = _from_pickle(Path(text), trust_remote_code)
    else:
        demos = _from_folder(Path(text), text)
    if not demos.trajectories and demos.label_obs is None:
        raise UserError(f"{source} holds no demonstrations; collect them without --demos")
    if env is not None:
        check_spaces(demos, env, text)
    return demos


def check_spaces(demos: Demonstrations, env: gym.Env, source: str) -> None:
    """Observations and labels that fit ``env``'s spaces: shapes, numbers (finite observations), and labels
    that are actions of its space (a Discrete label of 7, -1 or 0.5 is not)."""
    obs, acts = demos.transitions()
    obs_shape, act_shape = obs.shape[1:], acts.shape[1:]
    env_name = env.spec.id if env.spec else "the env"
    if (obs_shape, act_shape) != (env.observation_space.shape, env.action_space.shape):
        raise UserError(
            f"{source} holds demonstrations with observations {obs_shape} and actions {act_shape}, but "
            f"{env_name} has {env.observation_space.shape} and "
            f"{env.action_space.shape}; pass demos collected on this env, or drop --demos"
        )
    if not np.issubdtype(obs.dtype, np.number) or not np.all(np.isfinite(obs)):
        raise UserError(f"{source} holds observations that are not finite numbers ({obs.dtype}); pass other demos")
    problem = action_problem(acts, env.action_space, len(acts), bounds=False)
    if problem:
        what = problem.removeprefix("returned ")
        raise UserError(f"{source}: its labels are not actions of {env_name} ({what}); pass demos for this env")


def _hub_snapshot(source: str) -> Path:
    """The local snapshot of a Hub dataset repo (offline: from the cache), through huggingface_hub."""
    from huggingface_hub import snapshot_download

    repo, _, revision = source.removeprefix("hf://datasets/").partition("@")
    try:
        return Path(snapshot_download(repo, repo_type="dataset", revision=revision or None))
    except Exception as err:  # offline misses, unknown repos, network and auth errors
        raise UserError(
            f"dataset {repo} is not available ({type(err).__name__}: {first_line(err)}); check the id, or go online, "
            "or set HF_HUB_CACHE to a cache that holds it"
        ) from None


def _from_folder(folder: Path, source: str) -> Demonstrations:
    """An HF dataset saved to disk (a run's ``demos/``), or a folder of parquet files (a dataset repo)."""
    import datasets
    import pyarrow.parquet as pq

    datasets.disable_progress_bars()
    if not folder.is_dir():
        raise UserError(f"cannot load demonstrations from {source}: no such folder; pass a run's demos/ folder, "
                        "hf://datasets/USER/NAME or minari:DATASET_ID")  # fmt: skip
    provenance = read_provenance(folder)
    try:
        demos = Demonstrations([], source=source, provenance=provenance)
        if (folder / "dataset_info.json").exists() or (folder / "state.json").exists():  # a run's demos/ or labels/
            _add_rows(demos, datasets.load_from_disk(str(folder)))
        for part in sorted(folder.rglob("*.parquet")):  # read in memory: nothing cached outside the output
            _add_rows(demos, datasets.Dataset(pq.read_table(part)))
        return demos
    except UserError as err:
        raise UserError(f"{source}: {err}") from None
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:  # RecursionError: a deep state.json
        raise UserError(f"cannot load demonstrations from {source} ({type(err).__name__}: {first_line(err)}); "
                        "pass a folder written by sb3-il or imitation") from None  # fmt: skip


def read_provenance(folder: Path) -> dict[str, Any]:
    """The folder's ``provenance.json`` (empty if it has none), through the input validator: a malformed,
    list-valued or deeply nested file is a one-line error, not a traceback later."""
    path = Path(folder) / PROVENANCE_FILE
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link; data folders must hold their own files")
    if not path.exists():
        return {}
    return read_mapping(path, "the data's provenance", "fix or delete it")


def _add_rows(demos: Demonstrations, dataset: Any) -> None:
    """Trajectory rows become episodes, label rows labelled states."""
    if "terminal" in dataset.column_names:
        demos.trajectories += _trajectories(dataset)
        return
    obs, acts = _numbers(dataset["obs"], "obs"), _numbers(dataset["acts"], "acts")
    demos.label_obs = obs if demos.label_obs is None else np.concatenate([demos.label_obs, obs])
    demos.label_acts = acts if demos.label_acts is None else np.concatenate([demos.label_acts, acts])


def _numbers(column: Any, name: str) -> np.ndarray:
    """A column as a numeric array; strings, objects or ragged rows are a one-line error."""
    try:
        array = np.asarray(column)
    except ValueError:  # ragged rows
        array = np.asarray([], dtype=object)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise UserError(f"its {name} column holds {array.dtype} values, not numbers of one shape; pass other demos")
    return array


def _trajectories(dataset: Any) -> list[Trajectory]:
    """imitation's trajectory rows as Trajectory objects, ``infos`` dropped (never jsonpickle-decoded)."""
    dataset = dataset.with_format("numpy", columns=[c for c in dataset.column_names if c != "infos"])
    out: list[Trajectory] = []
    for row in dataset:
        kwargs = dict(obs=_numbers(row["obs"], "obs"), acts=_numbers(row["acts"], "acts"), infos=None,
                      terminal=bool(row["terminal"]))  # fmt: skip
        out.append(TrajectoryWithRew(**kwargs, rews=np.asarray(row["rews"])) if "rews" in row else Trajectory(**kwargs))
    return out


def _from_pickle(path: Path, trust_remote_code: bool) -> Demonstrations:
    if not trust_remote_code:
        raise UserError(
            f"{path} is a pickled file, which could run code when loaded; pass a demos folder (HF datasets, e.g. "
            "runs/<run>/demos), or --trust-remote-code only if you trust its source"
        )
    from imitation.data import serialize

    try:
        return Demonstrations(list(serialize.load(path)), source=str(path))
    except Exception as err:  # numpy/pickle raise many types for a corrupt file
        raise UserError(f"cannot load demonstrations from {path} ({type(err).__name__})") from None


def _from_minari(dataset_id: str) -> Demonstrations:
    """A local Minari dataset (``MINARI_DATASETS_PATH``): its episodes as trajectories."""
    try:
        import minari
    except ImportError:
        raise UserError("minari: datasets need the minari package; pip install 'sb3-il[minari]'") from None
    try:
        dataset = minari.load_dataset(dataset_id)
    except Exception as err:  # unknown ids, missing folders, version mismatches
        raise UserError(
            f"cannot load Minari dataset {dataset_id} ({first_line(err)}); see `minari list local`"
        ) from None
    trajectories = [
        TrajectoryWithRew(obs=np.asarray(ep.observations), acts=np.asarray(ep.actions), infos=None,
                          terminal=bool(ep.terminations[-1]), rews=np.asarray(ep.rewards, dtype=np.float32))
        for ep in dataset.iterate_episodes()
    ]  # fmt: skip
    metadata = dataset.storage.metadata
    provenance = {"minari_dataset": dataset_id} | {
        k: metadata[k] for k in ("algorithm_name", "ref_max_score", "description") if k in metadata
    }
    return Demonstrations(trajectories, source=f"minari:{dataset_id}", provenance=provenance)


def transitions(trajectories: Sequence[Trajectory]) -> tuple[np.ndarray, np.ndarray]:
    """(observations, actions) of every transition, in order."""
    obs = np.concatenate([traj.obs[:-1] for traj in trajectories])
    acts = np.concatenate([traj.acts for traj in trajectories])
    return obs, acts
