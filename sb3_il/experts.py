"""Experts: pretrained SB3 agents from the Hugging Face Hub, exposed as one ``obs -> action`` callable.

The RL Zoo's ``sb3/{algo}-{env}`` repos were mostly saved with the old ``gym`` package and trained on
older MuJoCo env versions. Loading them on gymnasium's ``-v4`` envs needs three adaptations that all
live here, so the rest of the package only ever sees an :class:`Expert`:

* the zip is loaded with ``custom_objects`` for the (unused) schedules and for the spaces, whose
  pickled ``gym`` classes no longer import;
* ``vec_normalize.pkl`` is unpickled with ``gym.*`` mapped to ``gymnasium.*`` and its observation
  statistics are applied inside the expert, so callers pass raw env observations;
* observations are adapted where the env version changed the layout (Ant-v4 dropped the 84 contact
  force entries that Ant-v2/v3 experts expect; they are ~0 in those versions, so zeros are faithful).
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import torch as th
import yaml
from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
from huggingface_sb3 import load_from_hub
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import VecNormalize

from sb3_il.config import UserError
from sb3_il.policy import ObsNormalizer


def _algo_classes() -> dict[str, type[BaseAlgorithm]]:
    import sb3_contrib
    import stable_baselines3 as sb3

    return {
        "a2c": sb3.A2C,
        "ddpg": sb3.DDPG,
        "dqn": sb3.DQN,
        "ppo": sb3.PPO,
        "sac": sb3.SAC,
        "td3": sb3.TD3,
        "ars": sb3_contrib.ARS,
        "qrdqn": sb3_contrib.QRDQN,
        "tqc": sb3_contrib.TQC,
        "trpo": sb3_contrib.TRPO,
        # Policies written by sb3_il (see ``sb3_il.policy``) are plain PPO models.
        "bc": sb3.PPO,
        "dagger": sb3.PPO,
    }


class _GymToGymnasiumUnpickler(pickle.Unpickler):
    """Unpickles objects saved under old ``gym`` by resolving ``gym.*`` classes in ``gymnasium``."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - signature fixed by pickle
        if module == "gym" or module.startswith("gym."):
            module = "gymnasium" + module[len("gym") :]
        return super().find_class(module, name)


def read_vec_normalize(path: Path) -> VecNormalize:
    """A pickled ``VecNormalize`` without its venv (``set_venv`` attaches one), also one saved under old gym."""
    try:
        return _GymToGymnasiumUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except Exception as err:  # truncated files and foreign pickles raise many types
        raise UserError(
            f"could not read {path} ({type(err).__name__}: {err})".splitlines()[0]
            + "; replace it (delete it from the Hub cache, or re-run what wrote it)"
        ) from None


def _pad_ant_contact_forces(obs: np.ndarray) -> np.ndarray:
    """Ant-v2/v3 appended 84 contact-force entries that Ant-v4 leaves out; they are ~0 in those versions."""
    return np.concatenate([obs, np.zeros((obs.shape[0], 84), dtype=obs.dtype)], axis=1)


#: Observation adapters keyed by (expert obs dim, env obs dim). Module-level functions, so experts pickle.
#: They append the entries an older env version had after the current ones (Expert.jacobian relies on it).
OBS_ADAPTERS: dict[tuple[int, int], Callable[[np.ndarray], np.ndarray]] = {(111, 27): _pad_ant_contact_forces}


@dataclass
class ExpertFiles:
    """Local paths of an expert's files, as resolved through the Hub cache."""

    repo_id: str
    algo: str
    model_path: Path
    vec_normalize_path: Path | None


def _hub_file(repo_id: str, filename: str) -> Path:
    """Download one file with the real Hub client; turns the Hub's many failure modes into one-liners."""
    try:
        return Path(load_from_hub(repo_id=repo_id, filename=filename))
    except (LocalEntryNotFoundError, RepositoryNotFoundError, EntryNotFoundError) as err:
        raise UserError(
            f"expert file {repo_id}/{filename} is not available ({type(err).__name__}); "
            "check the repo id, or go online, or set HF_HUB_CACHE to a Hub cache that holds it "
            "(with HF_HUB_OFFLINE=1)"
        ) from None
    except Exception as err:  # network, auth and HTTP errors all mean the same to the user
        raise UserError(f"could not fetch {repo_id}/{filename} from the Hub: {err}".splitlines()[0]) from None


def download_expert(repo_id: str) -> ExpertFiles:
    """Fetch an RL-Zoo-layout repo (``{name}.zip``, ``config.yml``, maybe ``vec_normalize.pkl``)."""
    if repo_id.count("/") != 1:
        raise UserError(f"expert {repo_id!r} is not a Hub repo id; use the form ORG/ALGO-ENV, e.g. sb3/ppo-CartPole-v1")
    name = repo_id.split("/")[1]
    algo = name.split("-")[0].lower()
    if algo not in _algo_classes():
        raise UserError(
            f"cannot tell the algorithm of {repo_id!r}: the repo name must start with one of "
            f"{', '.join(sorted(_algo_classes()))} (RL Zoo naming, e.g. sb3/tqc-Hopper-v3)"
        )
    model_path = _hub_file(repo_id, f"{name}.zip")
    config = yaml.load(_hub_file(repo_id, "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    normalize = dict(config or {}).get("normalize", False)
    vec_normalize_path = _hub_file(repo_id, "vec_normalize.pkl") if normalize else None
    return ExpertFiles(repo_id, algo, model_path, vec_normalize_path)


def saved_spaces(model_path: Path) -> tuple[tuple[int, ...], dict]:
    """Read the saved spaces' shape and type from the zip's JSON, without unpickling old gym classes."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            data = json.loads(archive.read("data"))
        return _json_shape(data["observation_space"]), data["action_space"]
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise UserError(
            f"{model_path} is not a valid SB3 model zip ({err}); replace it (delete it from the Hub cache and "
            "re-download, or re-run what wrote it)"
        ) from None


def _json_shape(space: dict) -> tuple[int, ...]:
    """Old gym zips store ``shape``, gymnasium ones ``_shape``."""
    return tuple(space["shape"] if "shape" in space else space["_shape"])


def action_space_mismatch(saved: dict, space: gym.Space) -> str | None:
    """None when the saved action space (zip JSON) fits ``space``; else the saved one, named as gymnasium would."""
    if isinstance(space, gym.spaces.Discrete):
        fits = "Discrete" in saved[":type:"] and int(saved.get("n", -1)) == int(space.n)
    else:
        fits = "Box" in saved[":type:"] and _json_shape(saved) == space.shape
    if fits:
        return None
    kind = saved[":type:"].split(".")[-1].rstrip("'>")
    return f"{kind}({saved['n']})" if "n" in saved else f"{kind}(shape {_json_shape(saved)})"


class Expert:
    """A frozen, deterministic expert: raw env observations in, env actions out (batched).

    Everything env-version or normalization specific happens inside ``__call__``, so the same object
    labels demonstrations, relabels DAgger states and is evaluated against the learner.
    """

    def __init__(
        self,
        policy: BasePolicy,
        repo_id: str,
        normalizer: ObsNormalizer | None = None,
        adapt: Callable[[np.ndarray], np.ndarray] | None = None,
        revision: str = "",
        env_spaces: SimpleNamespace | None = None,
    ) -> None:
        self.policy = policy
        self.repo_id = repo_id
        #: The Hub commit the files came from, so results can name the exact expert.
        self.revision = revision
        self.env_spaces = env_spaces
        self.normalizer = normalizer
        self.adapt = adapt

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if self.adapt is not None:
            obs = self.adapt(obs)
        if self.normalizer is not None:
            obs = self.normalizer.numpy(obs)
        with th.no_grad():
            actions, _ = self.policy.predict(np.asarray(obs, dtype=np.float32), deterministic=True)
        return actions

    def jacobian(self, obs: np.ndarray) -> np.ndarray:
        """d action / d observation at each of ``obs`` (Box actions): shape (n, action dim, observation dim).

        The expert is a white-box network, so one query can return how its action changes around the
        state as well as the action itself (Sobolev training, Czarnecki et al. 2017): far more to fit per
        labelled state than the action alone. Computed through the whole of :meth:`__call__` (adapter,
        normalization, squashing or clipping) by autograd, one backward pass per action entry.
        """
        obs = np.asarray(obs)
        z = th.as_tensor(np.asarray(self.adapt(obs) if self.adapt else obs, dtype=np.float32)).requires_grad_(True)
        normalized = self.normalizer.torch(z) if self.normalizer is not None else z
        actions = self.policy._predict(normalized, deterministic=True)
        space = self.policy.action_space
        low, high = (th.as_tensor(b, dtype=th.float32) for b in (space.low, space.high))
        if self.policy.squash_output:
            actions = low + 0.5 * (actions + 1.0) * (high - low)
        else:
            actions = th.minimum(th.maximum(actions, low), high)
        rows = [
            th.autograd.grad(actions[:, j].sum(), z, retain_graph=j < actions.shape[1] - 1)[0]
            for j in range(actions.shape[1])
        ]
        # Adapters only append entries the env lacks (OBS_ADAPTERS), so d/d obs is the leading block.
        return th.stack(rows, dim=1)[:, :, : obs.shape[1]].numpy()

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        """Pickle as "load this Hub expert for these spaces": some policies (gSDE) hold autograd state
        that cannot cross processes, and a background worker reads the same Hub cache anyway."""
        return load_expert, (self.repo_id, self.env_spaces)


def load_expert(repo_id: str, env: gym.Env | gym.vector.VectorEnv | object) -> Expert:
    """Load ``repo_id`` from the Hub (or its offline cache) as an :class:`Expert` for ``env``'s spaces.

    ``env`` is anything with ``observation_space`` and ``action_space`` (a gymnasium env or SB3 VecEnv).
    """
    files = download_expert(repo_id)
    env_id = getattr(getattr(env, "spec", None), "id", None) or "this env"
    obs_space, act_space = env.observation_space, env.action_space
    saved_obs_shape, saved_act = saved_spaces(files.model_path)
    acts = action_space_mismatch(saved_act, act_space)
    if acts is not None:
        raise UserError(
            f"expert {repo_id} acts in {acts} but {env_id} expects {act_space}; pick an expert trained on {env_id}"
        )
    adapt = None
    if saved_obs_shape != obs_space.shape:
        key = (int(np.prod(saved_obs_shape)), int(np.prod(obs_space.shape)))
        if len(saved_obs_shape) != 1 or key not in OBS_ADAPTERS:
            raise UserError(
                f"expert {repo_id} expects observations of shape {saved_obs_shape} but {env_id} gives "
                f"{obs_space.shape}; pick an expert trained on {env_id}"
            )
        adapt = OBS_ADAPTERS[key]
    expert_obs_space = gym.spaces.Box(-np.inf, np.inf, saved_obs_shape, np.float32)
    custom_objects = {
        "learning_rate": 0.0,
        "lr_schedule": lambda _: 0.0,
        "clip_range": lambda _: 0.0,
        "observation_space": expert_obs_space,
        "action_space": act_space,
    }
    try:
        model = _algo_classes()[files.algo].load(files.model_path, custom_objects=custom_objects, device="cpu")
    except (zipfile.BadZipFile, EOFError, RuntimeError, KeyError, ValueError) as err:
        raise UserError(
            f"could not load {files.model_path} ({type(err).__name__}: {err}); "
            "delete it from the Hub cache and re-download".splitlines()[0]
        ) from None
    normalizer = None
    if files.vec_normalize_path is not None:
        vec_normalize = read_vec_normalize(files.vec_normalize_path)
        if vec_normalize.norm_obs:
            rms = vec_normalize.obs_rms
            normalizer = ObsNormalizer(rms.mean, rms.var, vec_normalize.clip_obs, vec_normalize.epsilon)
    spaces = SimpleNamespace(observation_space=obs_space, action_space=act_space, spec=getattr(env, "spec", None))
    return Expert(model.policy, repo_id, normalizer, adapt, files.model_path.parent.name, spaces)
