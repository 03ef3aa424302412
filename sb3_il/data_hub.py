"""Share a run's labelled data: a Hugging Face **dataset** repo (parquet + card), or a Minari dataset.

The dataset repo holds two configs the Hub viewer shows: ``demos`` (the expert's episodes, one a row, in
imitation's trajectory schema) and ``labels`` (the states DAgger had the expert label, one a row, with
iteration, β, episode and step), plus ``provenance.json``. ``sb3-il train --demos hf://datasets/USER/NAME``
trains from it; ``datasets.load_dataset("USER/NAME", "demos")`` reads it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sb3_il.config import package_version
from sb3_il.demos import PROVENANCE_FILE, load_demos, read_provenance
from sb3_il.envs import make_env
from sb3_il.errors import UserError, first_line
from sb3_il.files import atomic_write, staged_dir, write_json
from sb3_il.runs import Run, read_run

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
#: A Minari dataset id: an optional namespace, a name and a version (checked before Minari makes any folder).
_MINARI_ID = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}-v[0-9]+$")
PARTS = ("demos", "labels")


def check_dataset_id(repo_id: str) -> None:
    owner, _, name = repo_id.partition("/")
    if not (_NAME.match(owner) and _NAME.match(name)) or ".." in repo_id:
        raise UserError(f"--repo-id {repo_id!r} must be USER/NAME of letters, digits, '-', '_' or '.'")


def package_demos(run_dir: Path, repo_id: str, out_dir: Path) -> Path:
    """Write exactly the files a dataset push uploads into ``out_dir`` (new, or an earlier package)."""
    import datasets

    check_dataset_id(repo_id)
    run = read_run(Path(run_dir))
    datasets.disable_progress_bars()
    counts: dict[str, int] = {}
    parts = {part: run_part(run, part) for part in PARTS}
    if parts["demos"] is None:
        raise UserError(f"{run_dir} has no demos/ folder; re-run train to collect demonstrations")
    provenance = read_provenance(parts["demos"])
    with staged_dir(Path(out_dir), discard_on=(UserError,), reads=[run.folder]) as stage:
        for part, folder in parts.items():
            if folder is None:
                continue
            data = _load_part(folder)
            (stage / part).mkdir()
            data.to_parquet(str(stage / part / "train-00000-of-00001.parquet"))
            counts[part] = len(data)
        provenance = dataset_provenance(run, provenance, counts)
        write_json(stage / PROVENANCE_FILE, provenance)
        atomic_write(stage / "README.md", lambda p: p.write_text(dataset_card(repo_id, run, provenance, counts)))
    return Path(out_dir)


def run_part(run: Run, part: str) -> Path | None:
    """A run's ``demos/`` or ``labels/`` folder (None if it has none); one that is a symbolic link is refused,
    since a run folder's data must be its own."""
    folder = run.folder / part
    if folder.is_symlink():
        raise UserError(f"{folder} is a symbolic link; a run folder's data must be its own (re-run train)")
    return folder if folder.is_dir() else None


def _load_part(folder: Path) -> Any:
    """A saved HF dataset folder, or a one-line error: corrupt arrow data, a missing ``state.json``."""
    import datasets

    try:
        return datasets.load_from_disk(str(folder))
    except Exception as err:  # datasets and pyarrow raise many types for damaged folders
        raise UserError(f"cannot read {folder} ({type(err).__name__}: {first_line(err)}); re-run train") from None


def dataset_provenance(run: Run, recorded: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    return recorded | {
        "episodes": counts.get("demos", 0),
        "labels": counts.get("labels", 0),
        "run_algo": run.config.algo,
        "sb3_il_version": recorded.get("sb3_il_version", package_version()),
    }


def dataset_card(repo_id: str, run: Run, provenance: dict[str, Any], counts: dict[str, int]) -> str:
    env_id = run.config.env_id
    meta = {
        "license": "mit",
        "task_categories": ["reinforcement-learning"],
        "tags": ["imitation-learning", "sb3", "sb3-il", "stable-baselines3", env_id],
        "pretty_name": f"{env_id} expert labels from {run.config.expert}",
        "configs": [
            {"config_name": part, "data_files": f"{part}/*.parquet", **({"default": True} if part == "demos" else {})}
            for part in PARTS
            if part in counts
        ],  # fmt: skip
    }
    transitions = provenance.get("n_transitions", "?")
    labels = counts.get("labels", 0)
    expert_return = provenance.get("expert_return")
    score = f"{expert_return:.1f}" if isinstance(expert_return, int | float) else "not recorded"
    return f"""---
{yaml.safe_dump(meta, sort_keys=False)}---

# {env_id}: expert labels from `{run.config.expert}`

Imitation-learning data written by sb3-il: what the expert
[`{run.config.expert}`](https://huggingface.co/{run.config.expert}) answered, with its provenance.

| | |
|---|---|
| expert | `{run.config.expert}` (revision `{provenance.get("expert_revision", "?")}`) |
| expert's return | {score} over {provenance.get("expert_eval_episodes", "?")} evaluation episodes |
| env | `{env_id}` (gymnasium {provenance.get("gymnasium_version", "?")}) |
| `demos` | {counts.get("demos", 0)} expert episodes, {transitions} transitions (imitation's trajectory schema) |
| `labels` | {labels} states the {
        run.config.algo
    } learner visited, labelled by the expert (iteration, β, episode, step) |
| seed, sb3-il | {provenance.get("seed", run.config.seed)}, {provenance.get("sb3_il_version", "?")} |

`provenance.json` holds the same as data.

## Usage

```python
from datasets import load_dataset

demos = load_dataset("{repo_id}", "demos", split="train")     # one expert episode a row
{
        "labels = load_dataset("
        + repr(repo_id).replace("'", '"')
        + ', "labels", split="train")   # one labelled state a row'
        if labels
        else ""
    }
```

```bash
sb3-il train --algo bc --env {env_id} --demos hf://datasets/{repo_id}          # BC on its first 1000 labels
sb3-il train --algo bc --env {env_id} --demos hf://datasets/{repo_id} --n-demo-steps {counts_total(provenance, labels)}
```
"""


def counts_total(provenance: dict[str, Any], labels: int) -> int:
    transitions = provenance.get("n_transitions")
    return (transitions if isinstance(transitions, int) else 0) + labels


def export_minari(run_dir: Path, dataset_id: str) -> Path:
    """Write the run's expert episodes as a Minari dataset through Minari's own API; returns its folder."""
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError:
        raise UserError("export-minari needs minari with its writer; pip install 'sb3-il[minari]'") from None
    if not _MINARI_ID.match(dataset_id) or ".." in dataset_id:
        raise UserError(f"--dataset-id {dataset_id!r} must be [NAMESPACE/]NAME-vN of letters, digits, '-', '_' or "
                        "'.', e.g. sb3-il/hopper-expert-v0")  # fmt: skip
    run = read_run(Path(run_dir))
    demos_dir = run_part(run, "demos")
    if demos_dir is None:
        raise UserError(f"{run_dir} has no demos/ folder; re-run train to collect demonstrations")
    demos = load_demos(demos_dir)
    path = Path(minari.storage.get_dataset_path(dataset_id))
    if path.exists():
        raise UserError(f"Minari dataset {dataset_id} exists at {path}; choose another id or version")
    env = make_env(run.config.env_id)
    env.close()
    buffers = []
    for i, traj in enumerate(demos.trajectories):  # Minari stores each space's own dtype
        n, rews = len(traj.acts), getattr(traj, "rews", None)
        ends = np.arange(n) == n - 1
        buffers.append(EpisodeBuffer(
            id=i, observations=np.asarray(traj.obs, dtype=env.observation_space.dtype),
            actions=np.asarray(traj.acts, dtype=env.action_space.dtype),
            rewards=np.zeros(n) if rews is None else np.asarray(rews, dtype=np.float64),
            terminations=ends & bool(traj.terminal), truncations=ends & (not traj.terminal),
        ))  # fmt: skip
    expert = f"{run.config.expert}@{demos.provenance.get('expert_revision', '?')}"
    try:
        dataset = minari.create_dataset_from_buffers(
            dataset_id, buffers, env=run.config.env_id, eval_env=run.config.env_id,
            algorithm_name=f"expert {run.config.expert} (labelled with sb3-il {package_version()})",
            ref_max_score=demos.provenance.get("expert_return"), data_format="arrow",
            description=f"Expert episodes of {expert} on {run.config.env_id}, collected by sb3-il (seed "
            f"{run.config.seed}).",
        )  # fmt: skip
    except Exception as err:  # a bad name, env mismatches
        shutil.rmtree(path, ignore_errors=True)  # it did not exist before: this export's partial output
        raise UserError(f"cannot write Minari dataset {dataset_id}: {first_line(err)}") from None
    return Path(dataset.spec.data_path).parent
