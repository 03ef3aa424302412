"""Experts: pretrained SB3 agents from the Hugging Face Hub, exposed as one ``obs -> action`` callable.

The RL Zoo's ``sb3/{algo}-{env}`` repos were mostly saved with the old ``gym`` package and trained on
older MuJoCo env versions. Loading them on gymnasium's ``-v4`` envs needs three adaptations that all
live here, so the rest of the package only ever sees an :class:`Expert`:

* the zip is loaded with ``custom_objects`` for the (unused) schedules and for the spaces, whose
  pickled ``gym`` classes no longer import;
* ``vec_normalize.pkl`` is unpickled with ``gym.*`` mapped to ``gymnasium.*`` and its observation
  statistics are applied inside the expert, so callers pass raw env observations;
* observations are adapted where the env version changed the layout (Ant-v4 dropped the 84 contact
  force entries that Ant-v2/v3 experts expect; they are ~0 in those versions, so zeros are faithful), also
  under the wrappers the expert was trained with (a time feature stays last).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import torch as th
from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
from huggingface_sb3 import load_from_hub
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from sb3_il.errors import UserError, first_line
from sb3_il.inputs import number, read_yaml
from sb3_il.policy import ObsNormalizer
from sb3_il.trust import load_model, read_vec_normalize, zip_data


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


@dataclass(frozen=True)
class PadAdapter:
    """An env's observation as an older env version's: its first ``head`` entries, then ``gap`` zeros for the
    entries the older version had and this one lacks, then the rest. The rest is what a wrapper appended
    (the TimeFeatureWrapper's time feature), so a wrapped v3 expert reads a wrapped v4 env. A dataclass, so
    experts pickle."""

    head: int
    gap: int

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        zeros = np.zeros((obs.shape[0], self.gap), dtype=obs.dtype)
        return np.concatenate([obs[:, : self.head], zeros, obs[:, self.head :]], axis=1)

    def columns(self, env_dim: int) -> list[int]:
        """Where each of the env's entries sits in the expert's input (for d action / d observation)."""
        return [*range(self.head), *range(self.head + self.gap, self.gap + env_dim)]


#: Observation adapters keyed by the unwrapped (expert obs dim, env obs dim). Ant-v2/v3 have 84 contact-force
#: entries after the 27 Ant-v4 keeps; they are ~0 in those versions, so zeros are faithful.
OBS_ADAPTERS: dict[tuple[int, int], PadAdapter] = {(111, 27): PadAdapter(27, 84)}
#: Most entries env wrappers append (the TimeFeatureWrapper: 1) that an adapter carries over at the end.
MAX_APPENDED = 2


def obs_adapter(expert_dim: int, env_dim: int) -> PadAdapter | None:
    """The adapter from ``env_dim`` to ``expert_dim`` observations, wrappers' appended entries included."""
    for appended in range(MAX_APPENDED + 1):
        adapter = OBS_ADAPTERS.get((expert_dim - appended, env_dim - appended))
        if adapter is not None:
            return adapter
    return None


@dataclass
class ExpertFiles:
    """Local paths of an expert's files, as resolved through the Hub cache (or given on disk)."""

    repo_id: str
    algo: str
    model_path: Path
    vec_normalize_path: Path | None
    #: The Hub commit the files came from (a local zip: a hash of its bytes), so results name the exact expert.
    revision: str = ""
    #: The RL Zoo's ``env_wrapper`` entry of its config.yml, as recorded (None: none).
    env_wrapper: object = None


class Unavailable(UserError):
    """An expert's files cannot be had here (offline and not cached, or no such repo)."""


def _hub_file(repo_id: str, filename: str) -> Path:
    """Download one file with the real Hub client; turns the Hub's many failure modes into one-liners."""
    try:
        return Path(load_from_hub(repo_id=repo_id, filename=filename))
    except (LocalEntryNotFoundError, RepositoryNotFoundError, EntryNotFoundError) as err:
        raise Unavailable(
            f"expert file {repo_id}/{filename} is not available ({type(err).__name__}); "
            "check the repo id, or go online, or set HF_HUB_CACHE to a Hub cache that holds it "
            "(with HF_HUB_OFFLINE=1)"
        ) from None
    except Exception as err:  # network, auth and HTTP errors all mean the same to the user
        raise UserError(f"could not fetch {repo_id}/{filename} from the Hub: {err}".splitlines()[0]) from None


def download_expert(repo_id: str) -> ExpertFiles:
    """Fetch an RL-Zoo-layout repo (``{name}.zip``, ``config.yml``, maybe ``vec_normalize.pkl``)."""
    if repo_id.count("/") != 1 or not all(part and part not in (".", "..") for part in repo_id.split("/")):
        raise UserError(
            f"expert {repo_id!r} is neither a model zip nor a Hub repo id; use ORG/ALGO-ENV (e.g. sb3/ppo-CartPole-v1) "
            "or a path to an SB3 .zip"
        )
    name = repo_id.split("/")[1]
    algo = _algo_of(name, repo_id)
    model_path = _hub_file(repo_id, f"{name}.zip")
    config = read_yaml(_hub_file(repo_id, "config.yml"))
    config = dict(config) if isinstance(config, dict) else {}
    vec_normalize_path = _hub_file(repo_id, "vec_normalize.pkl") if config.get("normalize", False) else None
    return ExpertFiles(repo_id, algo, model_path, vec_normalize_path, model_path.parent.name, config.get("env_wrapper"))


def local_expert(path: Path) -> ExpertFiles:
    """A model zip on disk, RL Zoo named (``{algo}-....zip``), with ``vec_normalize.pkl`` beside it if any."""
    path = Path(path)
    vec_normalize = path.parent / "vec_normalize.pkl"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    stats = vec_normalize if vec_normalize.is_file() else None
    config = read_yaml(path.parent / "config.yml") if (path.parent / "config.yml").is_file() else {}
    wrapper = dict(config).get("env_wrapper") if isinstance(config, dict) else None
    return ExpertFiles(str(path), _algo_of(path.stem, str(path)), path, stats, f"sha256:{digest}", wrapper)


def expert_files(expert: str) -> ExpertFiles:
    """A local ``.zip`` if ``expert`` names one, else a Hub repo id."""
    return local_expert(Path(expert)) if expert.endswith(".zip") and Path(expert).is_file() else download_expert(expert)


def _algo_of(name: str, source: str) -> str:
    algo = name.split("-")[0].lower()
    if algo not in _algo_classes():
        raise UserError(
            f"cannot tell the algorithm of {source!r}: the name must start with one of "
            f"{', '.join(sorted(_algo_classes()))} and a dash (RL Zoo naming, e.g. tqc-Hopper-v3)"
        )
    return algo


def saved_spaces(model_path: Path) -> tuple[tuple[int, ...], dict]:
    """Read the saved spaces' shape and type from the zip's JSON, without unpickling old gym classes."""
    data = zip_data(model_path)
    try:
        return _json_shape(data["observation_space"]), data["action_space"]
    except (KeyError, TypeError) as err:
        raise UserError(
            f"{model_path} is not a valid SB3 model zip (no {first_line(err)}); replace it (delete it from the Hub "
            "cache and re-download, or re-run what wrote it)"
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
        adapt: PadAdapter | None = None,
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
        #: Whether its files were loaded with --trust-remote-code (a worker reloading it does the same).
        self.trust_remote_code = False

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
        jacobian = th.stack(rows, dim=1)
        return (jacobian[:, :, self.adapt.columns(obs.shape[1])] if self.adapt else jacobian).numpy()

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        """Pickle as "load this Hub expert for these spaces": some policies (gSDE) hold autograd state
        that cannot cross processes, and a background worker reads the same Hub cache anyway."""
        return load_expert, (self.repo_id, self.env_spaces, self.trust_remote_code)


def load_expert(repo_id: str, env: gym.Env | gym.vector.VectorEnv | object, trust_remote_code: bool = False) -> Expert:
    """Load ``repo_id`` (a Hub repo, or a local model zip) as an :class:`Expert` for ``env``'s spaces.

    ``env`` is anything with ``observation_space`` and ``action_space`` (a gymnasium env or SB3 VecEnv).
    Nothing in the files runs code unless ``trust_remote_code`` (see :mod:`sb3_il.trust`).
    """
    files = expert_files(repo_id)
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
        adapt = obs_adapter(int(np.prod(saved_obs_shape)), int(np.prod(obs_space.shape)))
        if len(saved_obs_shape) != 1 or len(obs_space.shape) != 1 or adapt is None:
            raise UserError(
                f"expert {repo_id} expects observations of shape {saved_obs_shape} but {env_id} gives "
                f"{obs_space.shape}; pick an expert trained on {env_id}"
            )
    expert_obs_space = gym.spaces.Box(-np.inf, np.inf, saved_obs_shape, np.float32)
    spaces = {"observation_space": expert_obs_space, "action_space": act_space}
    model = load_model(_algo_classes()[files.algo], files.model_path, spaces, trust_remote_code)
    normalizer = None
    if files.vec_normalize_path is not None:
        vec_normalize = read_vec_normalize(files.vec_normalize_path, trust_remote_code)
        if vec_normalize.norm_obs:
            rms = vec_normalize.obs_rms
            normalizer = ObsNormalizer(rms.mean, rms.var, vec_normalize.clip_obs, vec_normalize.epsilon)
    env_spaces = SimpleNamespace(observation_space=obs_space, action_space=act_space, spec=getattr(env, "spec", None))
    expert = Expert(model.policy, repo_id, normalizer, adapt, files.revision, env_spaces)
    expert.trust_remote_code = trust_remote_code
    return expert


class CallableExpert:
    """A user's expert given as a function (a scripted controller, a non-SB3 policy): obs batch -> actions.

    It has no network to differentiate (no Sobolev loss) and no files to reload, so it is evaluated in the
    training process and its returns are not cached. What it answers is checked on every call against the
    env's action space (shape, type, finite, in range), so a wrong answer is a one-line error naming the
    expert instead of an assertion deep in gymnasium or a "diverged" training.
    """

    def __init__(self, act: Callable[[np.ndarray], np.ndarray], action_space: gym.Space, name: str | None = None):
        self.act = act
        self.action_space = action_space
        self.repo_id = name or self.name_of(act)
        self.revision = ""

    @staticmethod
    def name_of(act: Callable) -> str:
        return f"callable:{getattr(act, '__qualname__', type(act).__name__)}"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        try:
            actions = np.asarray(self.act(np.asarray(obs)))
        except Exception as err:  # the user's code: any error, named with the expert
            raise UserError(f"the expert {self.repo_id} raised {type(err).__name__}: {first_line(err)}") from None
        problem = action_problem(actions, self.action_space, len(obs))
        if problem:
            raise UserError(f"the expert {self.repo_id} {problem}; it must return one action per observation")
        return actions

    def jacobian(self, obs: np.ndarray) -> np.ndarray:
        raise UserError("--jacobian-weight needs an SB3 expert (a network to differentiate), not a callable")


class RecordedExpert:
    """An expert known only from its demonstrations: BC on a dataset whose expert model is not at hand.

    It cannot act (DAgger needs a real expert); its return is what the data recorded, the run's
    ``provenance.json`` ``expert_return`` or Minari's ``ref_max_score``, so % of expert is reported against
    that, and only the raw return where the data recorded none.
    """

    def __init__(self, repo_id: str | None, provenance: dict) -> None:
        self.repo_id = repo_id or str(provenance.get("expert", "unknown expert"))
        self.revision = str(provenance.get("expert_revision", ""))
        mean = number(provenance, "expert_return", "the data's provenance")
        if mean is None:
            mean = number(provenance, "ref_max_score", "the Minari dataset's metadata")
        std = number(provenance, "expert_return_std", "the data's provenance") if mean is not None else None
        #: (mean, std) of the expert's return as recorded; NaN where the data does not say.
        self.recorded_return = (float("nan") if mean is None else mean, 0.0 if std is None else std)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        raise UserError(f"the expert {self.repo_id} is not available here, only its demonstrations; pass --expert "
                        "with a model that can label states")  # fmt: skip

    def jacobian(self, obs: np.ndarray) -> np.ndarray:
        return self(obs)


def expert_available(expert: str | None) -> bool:
    """Whether ``expert`` names a model that can be loaded here (a local zip, or a Hub repo reachable or cached)."""
    if not expert:
        return False
    try:
        expert_files(expert)
    except Unavailable:
        return False
    return True


def action_problem(actions: np.ndarray, space: gym.Space, n: int, bounds: bool = True) -> str | None:
    """What is wrong with ``actions`` as a batch of ``n`` actions in ``space``, or None. ``bounds=False``
    accepts Box actions past the bounds (recorded datasets may hold unclipped actions; the env clips them)."""
    shape = (n, *space.shape)
    if actions.shape != shape:
        return f"returned actions of shape {actions.shape} for {n} observations; expected {shape}"
    if not (np.issubdtype(actions.dtype, np.number) or actions.dtype == bool):
        return f"returned {actions.dtype} actions; expected numbers"
    if isinstance(space, gym.spaces.Discrete):
        whole = np.all(np.mod(actions, 1) == 0)
        if not (whole and np.all((actions >= space.start) & (actions < space.start + space.n))):
            return f"returned actions outside {space} (integers {space.start}..{space.start + space.n - 1})"
        return None
    if not np.all(np.isfinite(actions)):
        return "returned NaN or infinite actions"
    if bounds and isinstance(space, gym.spaces.Box) and not np.all((actions >= space.low) & (actions <= space.high)):
        return f"returned actions outside {space}'s bounds"
    return None
