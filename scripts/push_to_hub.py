#!/usr/bin/env python
"""Package a run folder as a Hub model repo (policy zip, vec_normalize.pkl, config, results, model card,
replay video) and upload it, or with --dry-run only write what would be uploaded.

    python scripts/push_to_hub.py --run runs/dagger-Ant-v4-s0 --repo-id USER/dagger-Ant-v4
    python scripts/push_to_hub.py --run runs/dagger-Ant-v4-s0 --repo-id USER/dagger-Ant-v4 --dry-run out/
    python scripts/push_to_hub.py --run runs/finetune-dagger-Ant-v4-s0 --repo-id USER/ppo-Ant-v4   # fine-tuned

The token is read by huggingface_hub from HF_TOKEN or `huggingface-cli login`, never from a flag.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from sb3_il.cli import guarded
from sb3_il.hub import package_run, push


@guarded
def main(argv=None) -> int:  # noqa: ANN001
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a finished run folder (has results.json)")
    parser.add_argument(
        "--repo-id", required=True, help="USER/{algo}-{env}, e.g. me/dagger-Ant-v4 (me/ppo-Ant-v4 for a fine-tuned run)"
    )
    parser.add_argument("--dry-run", type=Path, default=None, metavar="DIR", help="write the package here; no upload")
    parser.add_argument("--video-steps", type=int, default=1000, help="length of replay.mp4 in env steps (0: none)")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    if args.dry_run is not None:
        package = package_run(args.run, args.repo_id, args.dry_run, video_steps=args.video_steps)
        print(f"dry run: {package} holds what would be uploaded to {args.repo_id}:")
        for path in sorted(package.iterdir()):
            print(f"  {path.name}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        package = package_run(args.run, args.repo_id, Path(tmp) / "package", video_steps=args.video_steps)
        print(f"uploaded: {push(package, args.repo_id, args.private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
