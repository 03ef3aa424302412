import pytest
import yaml

from sb3_il.config import TrainConfig, make_config
from sb3_il.errors import UserError


def test_layering_defaults_zoo_then_cli(tmp_path):
    article = make_config("dagger", "Ant-v4", {})
    assert article.expert == "sb3/trpo-Ant-v3" and article.lr == 5e-3 and article.lr_schedule == "constant"
    assert (article.n_iters, article.steps_per_iter, article.grad_steps, article.batch_size) == (10, 1000, 1000, 100)
    assert article.buffer_size == 1_000_000 and article.net_arch == [64, 64]

    strong = make_config("dagger", "Hopper-v4", {"expert": "sb3/tqc-Hopper-v3", "seed": 3}, "strong")
    assert strong.lr_schedule == "cosine" and strong.expert == "sb3/tqc-Hopper-v3" and strong.seed == 3
    assert strong.adapt and (strong.select_last, strong.select_by) == (5, "loss")
    assert strong.label_budget == 11_000  # 1,000 demos + 39 x 250 + 250 to score the last iterate
    # One recipe: nothing depends on which expert or env is named (what adapts is resolved from observations).
    other = make_config("dagger", "Walker2d-v4", {"expert": "sb3/a2c-Walker2d-v3", "seed": 3}, "strong")
    assert {k: v for k, v in vars(other).items() if k not in ("env_id", "expert")} == {
        k: v for k, v in vars(strong).items() if k not in ("env_id", "expert")
    }

    bc = make_config("bc", "Hopper-v4", {"n_iters": 7})
    assert bc.n_iters == 0  # BC is the fit on demonstrations alone

    saved = tmp_path / "config.yml"
    saved.write_text(yaml.safe_dump(strong.to_dict()))
    assert make_config(None, None, {}, config_file=str(saved)) == strong  # a run's config replays it
    with pytest.raises(UserError, match="--algo bc conflicts with the config file's algo dagger"):
        make_config("bc", None, {}, config_file=str(saved))


def test_unknown_keys_are_rejected(tmp_path):
    saved = tmp_path / "config.yml"
    saved.write_text(
        yaml.safe_dump(TrainConfig(expert="sb3/ppo-CartPole-v1", env_id="CartPole-v1").to_dict() | {"learning_rate": 1})
    )
    with pytest.raises(UserError, match="unknown config keys"):
        make_config("dagger", "CartPole-v1", {}, config_file=str(saved))


def test_the_configs_are_read_from_the_top_level_zoo_configs_folder():
    """The design's layout keeps zoo_configs/ at the top; the wheel ships it as sb3_il.zoo_configs (wheel-check)."""
    from importlib import resources
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert Path(str(resources.files("sb3_il.zoo_configs"))) == root / "zoo_configs"
    assert not (root / "sb3_il" / "zoo_configs").exists()


def test_a_label_budget_keeps_the_recipe_and_sets_its_iterations():
    """--label-budget N: the strong recipe's iterations of 250, as many as N leaves after the demonstrations
    and the last iterate's scoring; replayed from config.yml it asks for as many."""
    from sb3_il.config import with_label_budget

    strong = make_config("dagger", "Hopper-v4", {"expert": "sb3/tqc-Hopper-v3"}, "strong")
    for budget in (3_000, 11_000, 30_000):
        sized = with_label_budget(strong, budget)
        assert sized.label_budget == budget and sized.steps_per_iter == strong.steps_per_iter
        assert {k: v for k, v in vars(sized).items() if k != "n_iters"} == {
            k: v for k, v in vars(strong).items() if k != "n_iters"
        }
    assert with_label_budget(strong, 11_000).n_iters == strong.n_iters == 39
    assert with_label_budget(make_config("bc", "Hopper-v4", {}), 5_000).n_demo_steps == 5_000
    with pytest.raises(UserError, match="leaves no DAgger iteration"):
        with_label_budget(strong, 1_200)
