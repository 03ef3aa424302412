"""Hostile and broken inputs: no payload ever runs, no command touches what it was not given, one line each.

The fixtures are built here: pickled payloads (a call to ``os.system`` that would create a marker file) in an
SB3 zip's ``data``, in ``vec_normalize.pkl`` and as a demos file, a Python tag in a Hub repo's config.yml, laid
out as a real Hugging Face cache that the offline Hub client reads.
"""

import base64
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import sb3_il, train_run
from huggingface_hub import constants

from sb3_il.envs import make_env
from sb3_il.errors import UserError
from sb3_il.evaluation import EVAL_SEED, Evaluator, evaluate_expert
from sb3_il.experts import load_expert
from sb3_il.files import staged_dir
from sb3_il.hub import as_hub_cache
from sb3_il.trust import read_yaml


class Payload:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a payload ran"


def poisoned_zip(source: Path, target: Path, marker: Path, key: str = "policy_kwargs") -> Path:
    """``source`` (an SB3 zip) with ``data[key]`` replaced by a pickled payload."""
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(files["data"])
    data[key] = {":type:": "<class 'dict'>", ":serialized:": base64.b64encode(pickle.dumps(Payload(marker))).decode()}
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return target


@pytest.fixture
def hostile_cache(hub_cache: Path, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hub cache holding the real sb3 experts plus ``evil/*`` repos built around payloads."""
    cache = tmp_path / "cache"
    shutil.copytree(hub_cache, cache, symlinks=True)
    real = next((hub_cache / "models--sb3--ppo-CartPole-v1").rglob("ppo-CartPole-v1.zip"))
    config = "normalize: false\n"
    repos = {
        "evil/ppo-CartPole-v1": {"zip": poisoned_zip(real, tmp_path / "z.zip", marker), "config.yml": config},
        "evil2/ppo-CartPole-v1": {"zip": real, "config.yml": f"!!python/object/apply:os.system ['touch {marker}']\n"},
        "evil3/ppo-CartPole-v1": {"zip": real, "config.yml": "normalize: true\n",
                                  "vec_normalize.pkl": pickle.dumps(Payload(marker))},
    }  # fmt: skip
    for repo_id, files in repos.items():
        package = tmp_path / repo_id.replace("/", "_")
        package.mkdir()
        shutil.copyfile(files.pop("zip"), package / "ppo-CartPole-v1.zip")
        for name, content in files.items():
            (package / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        as_hub_cache(package, repo_id, cache)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize(
    ("repo_id", "message"),
    [
        ("evil/ppo-CartPole-v1", "asks to run posix.system when loaded; refused"),
        ("evil2/ppo-CartPole-v1", "YAML tag that would build an object"),
        ("evil3/ppo-CartPole-v1", "asks to run posix.system when loaded; refused"),
    ],
)
def test_hostile_hub_experts_never_run_code(hostile_cache, runs_dir, capsys, repo_id, message):
    with pytest.raises(UserError, match=message):
        load_expert(repo_id, make_env("CartPole-v1"))
    assert sb3_il("train", "--env", "CartPole-v1", "--expert", repo_id, "--runs-dir", runs_dir, "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_the_zoo_config_tag_still_loads(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(
        "!!python/object/apply:collections.OrderedDict\n- - - n_envs\n    - 8\n  - - policy\n    - MlpPolicy\n"
    )
    assert dict(read_yaml(path)) == {"n_envs": 8, "policy": "MlpPolicy"}


def test_a_local_expert_zip_loads_and_a_pickled_demos_file_is_refused(hub_cache, tmp_path, runs_dir, marker, capsys):
    real = next((hub_cache / "models--sb3--ppo-CartPole-v1").rglob("ppo-CartPole-v1.zip"))
    local = tmp_path / "mine" / "ppo-CartPole-v1.zip"
    local.parent.mkdir()
    shutil.copyfile(real, local)
    run = train_run(runs_dir, "--algo", "bc", "--env", "CartPole-v1", "--expert", local, "--grad-steps", "100")
    assert run["expert"] == str(local) and run["pct_expert"] > 0

    demos = tmp_path / "demos.pkl"
    demos.write_bytes(pickle.dumps(Payload(marker)))
    args = ["train", "--env", "CartPole-v1", "--demos", demos, "--runs-dir", tmp_path / "other", "--quiet"]
    assert sb3_il(*args) == 2
    assert "could run code" in capsys.readouterr().err


def test_hostile_run_folders_are_refused(runs_dir, tmp_path, marker, capsys):
    run = train_run(runs_dir, "--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "100")["dir"]
    poisoned = tmp_path / "poisoned"
    shutil.copytree(run, poisoned)
    poisoned_zip(run / "policy.zip", poisoned / "policy.zip", marker)
    out = tmp_path / "package"
    assert sb3_il("push", "--run", poisoned, "--repo-id", "me/bc-CartPole-v1", "--dry-run", out) == 2
    assert sb3_il("finetune", "--run", poisoned, "--out", tmp_path / "ft", "--timesteps", "64") == 2
    assert capsys.readouterr().err.count("asks to run posix.system") == 2

    linked = tmp_path / "linked"
    shutil.copytree(run, linked)
    secret = tmp_path / "token"
    secret.write_text("hf_secret")
    (linked / "learning_curve.png").unlink()
    (linked / "learning_curve.png").symlink_to(secret)
    assert sb3_il("push", "--run", linked, "--repo-id", "me/bc-CartPole-v1", "--dry-run", out) == 2
    assert "symbolic link" in capsys.readouterr().err and not out.exists()


def test_outputs_never_replace_what_sb3_il_did_not_write(runs_dir, tmp_path, capsys, monkeypatch):
    run = train_run(runs_dir, "--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "100")["dir"]
    assert {oct(p.stat().st_mode & 0o777) for p in run.iterdir() if p.is_file()} == {"0o644"}  # the umask's modes
    user = tmp_path / "user"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    push = ["push", "--run", run, "--repo-id", "me/bc-CartPole-v1", "--video-steps", "0", "--dry-run"]
    assert sb3_il(*push, user) == 2
    assert "was not written by sb3-il" in capsys.readouterr().err and (user / "keep.txt").read_text() == "mine"
    inner = user / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    assert sb3_il(*push, "..") == 2 and sb3_il(*push, ".") == 2  # the working folder and its parents: never
    assert "working folder" in capsys.readouterr().err
    assert inner.is_dir() and (user / "keep.txt").exists()
    assert sb3_il(*push, tmp_path / "pkg") == 0 and sb3_il(*push, tmp_path / "pkg") == 0  # its own: replaced
    assert sb3_il("finetune", "--run", run, "--out", run) == 2  # never over its source
    for name in (".", "..", "../x", "a/b"):
        assert sb3_il("train", "--env", "CartPole-v1", "--runs-dir", runs_dir, "--name", name) == 2
    (tmp_path / "file").write_text("")
    assert sb3_il("train", "--env", "CartPole-v1", "--runs-dir", tmp_path / "file", "--quiet") == 2
    assert "cannot write" in capsys.readouterr().err.splitlines()[-1]


def test_a_second_writer_of_the_same_folder_refuses(tmp_path):
    with staged_dir(tmp_path / "run") as stage:
        (stage / "first.txt").write_text("1")
        with pytest.raises(UserError, match="another sb3-il command is writing"), staged_dir(tmp_path / "run"):
            pass
    assert (tmp_path / "run" / "first.txt").exists() and not (tmp_path / "run.lock").exists()


BAD = [
    ("", "must be a mapping"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("just a string\n", "must be a mapping"),
    (b"\xff\xfe lr: 1\n", "cannot read config file"),
    ("algo: dagger\nenv_id: CartPole-v1\nlr: fast\n", "lr must be float, got 'fast'"),
    ("algo: dagger\nenv_id: CartPole-v1\nseed: -1\n", "--seed must be 0 or more"),
]


@pytest.mark.parametrize(("content", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_config_files_are_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "config.yml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert sb3_il("train", "--config-file", path, "--runs-dir", tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--env", "CartPole-v1", "--lr", "inf"],
        ["train", "--env", "CartPole-v1", "--lr", "1e308"],
        ["train", "--env", "CartPole-v1", "--seed", "-1"],
        ["train", "--algo", "bc", "--env", "CartPole-v1", "--config-file", "{dagger}"],
        ["finetune", "--run", "{run}", "--anchor-fraction", "-1"],
        ["finetune", "--run", "{run}", "--target-kl", "-1"],
        ["finetune", "--run", "{run}", "--ratchet-episodes", "-3"],
        ["finetune", "--run", "{run}", "--vf-warmup-rollouts", "-2"],
        ["finetune", "--run", "{run}", "--init-log-std", "nan"],
        ["finetune", "--run", "{run}", "--seed", "-1"],
        ["push", "--run", "{run}", "--repo-id", "me/bc-CartPole-v1", "--video-steps", "-5", "--dry-run", "{out}"],
        ["push", "--run", "{run}", "--repo-id", "../bc-CartPole-v1", "--dry-run", "{out}"],
        ["push", "--run", "{run}", "--repo-id", "me/bc-CartPole-v1; rm -rf x", "--dry-run", "{out}"],
    ],
)
def test_invalid_values_are_one_line_and_write_nothing(runs_dir, tmp_path, capsys, args):
    run = train_run(runs_dir, "--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "50")["dir"]
    dagger = tmp_path / "dagger.yml"
    dagger.write_text(yaml.safe_dump({"algo": "dagger", "env_id": "CartPole-v1"}))
    capsys.readouterr()
    fill = {"{run}": str(run), "{out}": str(tmp_path / "out"), "{dagger}": str(dagger)}
    extra = {"train": ["--runs-dir", tmp_path / "o"], "finetune": ["--out", tmp_path / "o"], "push": []}[args[0]]
    assert sb3_il(*[fill.get(a, a) for a in args], *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_a_corrupt_expert_returns_cache_is_rebuilt(hub_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_IL_CACHE", str(tmp_path))
    (tmp_path / "expert_returns.json").write_text("{not json")
    expert = load_expert("sb3/ppo-CartPole-v1", make_env("CartPole-v1"))
    evaluator = Evaluator("CartPole-v1", 2, EVAL_SEED)
    returns = evaluate_expert(evaluator, expert, "CartPole-v1", EVAL_SEED, 2).result()
    assert len(json.loads((tmp_path / "expert_returns.json").read_text())) == 1
    assert list(evaluate_expert(evaluator, expert, "CartPole-v1", EVAL_SEED, 2).result()) == list(returns)


def test_a_corrupt_policy_is_not_packaged_and_a_bad_grid_fails_before_training(runs_dir, tmp_path, capsys):
    run = train_run(runs_dir, "--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "50")["dir"]
    (runs_dir / "keep.zip").write_bytes((run / "policy.zip").read_bytes())
    (run / "policy.zip").write_bytes(b"PK\x03\x04 truncated")
    push = ["push", "--run", run, "--repo-id", "me/bc-CartPole-v1", "--video-steps", "0", "--dry-run", tmp_path / "p"]
    assert sb3_il(*push) == 2 and not (tmp_path / "p").exists()
    assert "not a valid SB3 model zip" in capsys.readouterr().err
    (run / "policy.zip").write_bytes((runs_dir / "keep.zip").read_bytes())
    config = yaml.safe_load((run / "config.yml").read_text())
    (run / "config.yml").write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "env_id"}))
    assert sb3_il(*push) == 2 and "config.yml lacks env_id" in capsys.readouterr().err
    grid = ["benchmark", "--envs", "CartPole-v1", "Nope-v0", "--seeds", "0", "--out", tmp_path / "grid"]
    assert sb3_il(*grid) == 2 and not (tmp_path / "grid").exists()  # the second env is checked before the first cell
    assert "unknown env 'Nope-v0'" in capsys.readouterr().err
