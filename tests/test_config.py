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
    assert strong.n_demo_steps + strong.n_iters * strong.steps_per_iter <= 11_000
    # The entry's by_expert map tunes it per expert: the default (trpo) expert's settings differ.
    trpo = make_config("dagger", "Hopper-v4", {}, "strong")
    assert (strong.grad_steps, strong.bounded_loss, strong.net_arch, strong.lr) == (1000, False, [256, 256], 1e-3)
    assert (trpo.grad_steps, trpo.bounded_loss) == (3000, True)
    assert (strong.jacobian_weight, trpo.jacobian_weight) == (0.0, 0.0)
    tqc_cheetah = make_config("dagger", "HalfCheetah-v4", {"expert": "sb3/tqc-HalfCheetah-v3"}, "strong")
    assert (tqc_cheetah.jacobian_weight, tqc_cheetah.candidates_per_label, tqc_cheetah.ensemble) == (0.3, 4, 3)
    ppo_cheetah = make_config("dagger", "HalfCheetah-v4", {}, "strong")
    assert (ppo_cheetah.jacobian_weight, ppo_cheetah.candidates_per_label, ppo_cheetah.ensemble) == (0.0, 1, 1)
    assert (strong.ensemble, trpo.ensemble, strong.candidates_per_label) == (3, 1, 1)
    assert (strong.select_last, strong.select_episodes, trpo.select_last, article.select_last) == (10, 20, 0, 0)

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
