"""Share a run on the Hugging Face Hub the RL Zoo way, and lay a package out as a Hub cache to load it back.

A pushed repo ``USER/{algo}-{env}`` holds ``{algo}-{env}.zip`` (a PPO zip), ``vec_normalize.pkl``,
``config.yml`` (with ``normalize``, as the Zoo writes it), ``results.json`` (with huggingface_sb3's keys), a
model card and a replay video, so ``--expert USER/{algo}-{env}`` loads it like any ``sb3/`` repo. A
fine-tuning run holds a PPO policy, so it goes to ``USER/ppo-{env}``.
"""

from __future__ import annotations

import datetime
import re
import shutil
from pathlib import Path

from sb3_il.errors import UserError, first_line
from sb3_il.evaluation import record_video
from sb3_il.files import MARKER, atomic_write, staged_dir, write_json, write_yaml
from sb3_il.model_card import model_card
from sb3_il.policy import POLICY_FILE, VEC_NORMALIZE_FILE, load_run_model, predict_fn
from sb3_il.runs import CONFIG_FILE, RESULTS_FILE, Run, read_run, run_file

#: What the Hub accepts as a user or repo name (letters, digits, ``-``, ``_``, ``.``; no leading dot).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
PLOTS = ("learning_curve.png", "finetune_curve.png")


def check_repo_id(repo_id: str, run: Run) -> str:
    """The repo's name; a one-line error unless ``repo_id`` is ``USER/{algo}-{env}`` for this run."""
    owner, _, name = repo_id.partition("/")
    example = f"me/{run.algo}-{run.config.env_id}"
    if not (_NAME.match(owner) and _NAME.match(name)) or ".." in repo_id:
        raise UserError(f"--repo-id {repo_id!r} must be USER/NAME of letters, digits, '-', '_' or '.', e.g. {example}")
    if not name.startswith(f"{run.algo}-"):
        raise UserError(
            f"name the repo {owner}/{run.algo}-{run.config.env_id} (RL Zoo naming: ALGO-ENV), "
            "so that load_from_hub users and --expert can tell how to load it"
        )
    return name


def package_run(
    run_dir: Path, repo_id: str, out_dir: Path, video_steps: int = 1000, dataset: str | None = None
) -> Path:
    """Write exactly the files a push uploads into ``out_dir`` (new, or an earlier package); ``video_steps=0``:
    no video; ``dataset``: the Hub dataset of the run's data, named in the card. Only the run's own regular
    files are read (no symbolic links), and the policy must load."""
    if video_steps < 0:
        raise UserError(f"--video-steps must be 0 (no video) or more, got {video_steps}")
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run = read_run(run_dir)
    name = check_repo_id(repo_id, run)
    act = predict_fn(*load_run_model(run_dir))  # a corrupt or hostile policy is refused before anything is packaged
    # The Zoo's config.yml says whether vec_normalize.pkl belongs to the model (load_expert reads it).
    config = vars(run.config) | {"normalize": (run_dir / VEC_NORMALIZE_FILE).exists()}
    with staged_dir(out_dir, discard_on=(UserError,), reads=[run_dir]) as stage:
        shutil.copyfile(run_file(run_dir, POLICY_FILE), stage / f"{name}.zip")
        for extra in (VEC_NORMALIZE_FILE, *PLOTS):
            if (run_dir / extra).exists() or (run_dir / extra).is_symlink():
                shutil.copyfile(run_file(run_dir, extra), stage / extra)
        write_yaml(stage / CONFIG_FILE, config)
        write_json(stage / RESULTS_FILE, hub_results(run, repo_id))
        has_video = False
        if video_steps > 0:
            why_not = record_video(act, run.env, stage / "replay.mp4", run.config.seed, video_steps)
            has_video = why_not is None
            if why_not:
                print(f"note: no replay.mp4 ({why_not}); set MUJOCO_GL=egl with its system library to render")
        card = model_card(repo_id, run, has_video, dataset)
        atomic_write(stage / "README.md", lambda p: p.write_text(card))
    return out_dir


def hub_results(run: Run, repo_id: str) -> dict:
    """The run's results (without the curve) plus the keys huggingface_sb3's ``package_to_hub`` writes."""
    results = {k: v for k, v in run.results.items() if k != "curve"}
    final = run.results["curve"][-1] if run.kind == "finetune" else run.results
    episodes = run.config.eval_episodes if run.kind == "finetune" else run.results["eval_episodes"]
    return results | {
        "repo_id": repo_id,
        "mean_reward": final["mean_return"],
        "std_reward": final["std_return"],
        "n_eval_episodes": episodes,
        "eval_datetime": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def as_hub_cache(
    package: Path, repo_id: str, cache_dir: Path, revision: str = "0" * 40, repo_type: str = "model"
) -> Path:
    """Lay ``package`` out as a Hugging Face cache entry, so the real offline Hub client reads it."""
    repo_dir = Path(cache_dir) / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    shutil.copytree(package, snapshot, dirs_exist_ok=True)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


def push(package: Path, repo_id: str, private: bool = False, repo_type: str = "model") -> str:
    """Upload ``package`` as a model (or dataset) repo with ``huggingface_hub``; the token comes from HF_TOKEN
    or ``huggingface-cli login``. Returns the commit's address."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type=repo_type, exist_ok=True, private=private)
        commit = api.upload_folder(folder_path=str(package), repo_id=repo_id, repo_type=repo_type,
                                   commit_message=f"Upload sb3-il {repo_type}", ignore_patterns=[MARKER])  # fmt: skip
    except Exception as err:  # auth, network and permission errors from the Hub client
        raise UserError(
            f"upload to {repo_id} failed: {first_line(err)} (log in with `huggingface-cli login` or set HF_TOKEN; "
            "check the repo id)"
        ) from None
    return str(getattr(commit, "commit_url", commit))
