"""Reading files sb3-il did not write (Hub repos, run folders, user paths) without running code from them.

Three formats can carry code: YAML tags, pickles (``vec_normalize.pkl``, the ``:serialized:`` entries of an
SB3 zip's ``data``) and torch checkpoints. YAML (and JSON) is read by :mod:`sb3_il.inputs`, with a safe
loader that knows one extra tag, the ``OrderedDict`` the RL Zoo writes. Pickles go through
:class:`SafeUnpickler`, which builds only allow-listed classes (numpy arrays, spaces, ``VecNormalize`` and
its statistics, SB3 policy and buffer classes, torch activations and optimizers) and refuses everything
else, functions included; an SB3 zip's pickled schedules (functions) are replaced by constants, since
imitation and fine-tuning set their own. Torch weights load with ``weights_only`` (torch's default since
2.6, which SB3's loader inherits). ``trust_remote_code=True`` (``--trust-remote-code``, the name
huggingface_sb3 uses) lifts the allow-list for files the user trusts.
"""

from __future__ import annotations

import base64
import importlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

from sb3_il.errors import UserError, first_line
from sb3_il.inputs import parse_json

#: Entries of an SB3 zip that hold pickled schedule functions: replaced by constants, never unpickled.
SCHEDULES = ("learning_rate", "lr_schedule", "clip_range", "clip_range_vf", "exploration_schedule")
_NUMPY = {"ndarray", "dtype", "_reconstruct", "scalar", "_frombuffer"}
_NUMPY_RANDOM = {"__randomstate_ctor", "__generator_ctor", "__bit_generator_ctor", "RandomState", "Generator",
                 "MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64", "SeedSequence"}  # fmt: skip
_EXACT = {
    ("collections", "deque"),
    ("collections", "OrderedDict"),
    ("torch", "device"),
    *(("builtins", name) for name in ("int", "float", "bool", "complex", "str", "bytes", "tuple", "list", "dict",
                                      "set", "frozenset", "slice", "range")),  # fmt: skip
    *(("torch.nn.modules.activation", name) for name in ("ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU",
                                                         "Sigmoid", "Softplus", "Identity")),  # fmt: skip
    *((f"torch.optim.{name.lower()}", name) for name in ("Adam", "AdamW", "RMSprop", "SGD")),
    *((f"gymnasium.spaces.{module}", name) for module, name in (("box", "Box"), ("discrete", "Discrete"),
      ("multi_discrete", "MultiDiscrete"), ("multi_binary", "MultiBinary"), ("dict", "Dict"), ("tuple", "Tuple"))),
}  # fmt: skip


def _sb3_class(module: str, name: str) -> bool:
    """A class of SB3's or sb3_contrib's that a saved model or VecNormalize legitimately names."""
    if not (module.startswith("stable_baselines3.") or module.startswith("sb3_contrib.")):
        return False
    from stable_baselines3.common.buffers import BaseBuffer
    from stable_baselines3.common.policies import BasePolicy
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
    from stable_baselines3.common.vec_env import VecNormalize

    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    bases = (BasePolicy, BaseFeaturesExtractor, BaseBuffer, RunningMeanStd, VecNormalize, TrainFrequencyUnit)
    return isinstance(obj, type) and (issubclass(obj, bases) or obj is TrainFreq)


def allowed(module: str, name: str) -> bool:
    if module.split(".")[0] == "numpy":
        random_state = name in _NUMPY_RANDOM or name.startswith("__pyx_unpickle_")  # Cython state setters
        return name in _NUMPY or (module.startswith("numpy.random") and random_state)
    return (module, name) in _EXACT or _sb3_class(module, name)


class Refused(Exception):
    """A pickle named something outside the allow-list."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickles allow-listed classes only; ``gym.*`` (pickled by old gym) is read as ``gymnasium.*``."""

    def __init__(self, file: io.BytesIO, trust_remote_code: bool = False) -> None:
        super().__init__(file)
        self.trust_remote_code = trust_remote_code

    def find_class(self, module: str, name: str) -> Any:  # noqa: ANN401 - signature fixed by pickle
        if module == "gym" or module.startswith("gym."):
            module = "gymnasium" + module[len("gym") :]
        if not self.trust_remote_code and not allowed(module, name):
            raise Refused(f"{module}.{name}")
        return super().find_class(module, name)


def loads(data: bytes, what: str, trust_remote_code: bool = False) -> Any:
    """Unpickle ``data`` (from ``what``, named in errors) through :class:`SafeUnpickler`."""
    try:
        return SafeUnpickler(io.BytesIO(data), trust_remote_code).load()
    except Refused as refused:
        raise UserError(
            f"{what} asks to run {refused} when loaded; refused (pass --trust-remote-code only if you trust its source)"
        ) from None
    except Exception as err:  # truncated files and foreign pickles raise many types
        raise UserError(
            f"could not read {what} ({type(err).__name__}: {first_line(err)}); replace it (delete it from the Hub "
            "cache, or re-run what wrote it)"
        ) from None


def read_vec_normalize(path: Path, trust_remote_code: bool = False) -> Any:
    """A pickled ``VecNormalize`` without its venv (``set_venv`` attaches one), also one saved under old gym."""
    from stable_baselines3.common.vec_env import VecNormalize

    vec_normalize = loads(Path(path).read_bytes(), str(path), trust_remote_code)
    if not isinstance(vec_normalize, VecNormalize):
        raise UserError(f"{path} holds a {type(vec_normalize).__name__}, not VecNormalize statistics; replace it")
    return vec_normalize


def zip_data(path: Path) -> dict[str, Any]:
    """The JSON ``data`` of an SB3 model zip (read without unpickling anything)."""
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read("data")
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as err:
        raise UserError(
            f"{path} is not a valid SB3 model zip ({first_line(err)}); replace it (delete it from the Hub cache and "
            "re-download, or re-run what wrote it)"
        ) from None
    data = parse_json(text, f"{path} (its data)", "replace it (delete it from the Hub cache, or re-run what wrote it)")
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a valid SB3 model zip (its data is not a mapping); replace it")
    return data


def custom_objects(path: Path, given: dict[str, Any], trust_remote_code: bool = False) -> dict[str, Any]:
    """``given`` plus every other pickled entry of the zip's ``data``, unpickled safely, so that SB3's own
    loader (which would cloudpickle them) unpickles nothing. Schedules become constants."""
    objects = dict(given)
    for key, item in zip_data(path).items():
        if key in objects or not (isinstance(item, dict) and ":serialized:" in item):
            continue
        if key in SCHEDULES:
            objects[key] = constant(0.0) if key != "learning_rate" else 0.0
            continue
        objects[key] = loads(base64.b64decode(item[":serialized:"]), f"{path} ({key})", trust_remote_code)
    return objects


def load_model(cls: type, path: Path, given: dict[str, Any] | None = None, trust_remote_code: bool = False,
               **kwargs: Any) -> Any:  # fmt: skip
    """``cls.load(path, ...)`` (an SB3 algorithm class) with every pickled entry read by :func:`custom_objects`."""
    objects = custom_objects(path, given or {}, trust_remote_code)
    try:
        return cls.load(path, custom_objects=objects, device="cpu", **kwargs)
    except (zipfile.BadZipFile, EOFError, RuntimeError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as err:
        raise UserError(
            f"could not load {path} ({type(err).__name__}: {first_line(err)}); replace it (delete it from the Hub "
            "cache and re-download, or re-run what wrote it)"
        ) from None


class _Constant:
    """A picklable constant schedule."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, _: float) -> float:
        return self.value


def constant(value: float) -> _Constant:
    return _Constant(value)
