"""sb3-il from Python: DAgger from a Hub expert, BC from a callable expert on a gymnasium.Env, then PPO.

python examples/quickstart.py            # a few seconds on CartPole (the tests run it)
"""

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO

from sb3_il import BC, DAgger, evaluate


def balance(obs: np.ndarray) -> np.ndarray:
    """A scripted CartPole controller: push toward where the pole is falling."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


if __name__ == "__main__":
    dagger = DAgger("CartPole-v1", expert="sb3/ppo-CartPole-v1", n_iters=2, grad_steps=300)
    model = dagger.learn()
    print(f"DAgger from the Hub expert: {dagger.mean_return:.0f} ({dagger.pct_expert:.0f}% of expert)")
    folder = dagger.save("runs/example-dagger-CartPole-v1")
    print("re-scored:", evaluate(str(folder), episodes=5)["mean_return"])

    bc = BC(gym.make("CartPole-v1"), expert=balance, n_demo_steps=2000, grad_steps=500)
    bc.learn()
    print(f"BC from a scripted controller: {bc.mean_return:.0f} ({bc.pct_expert:.0f}% of the controller)")

    model.set_env(gym.make("CartPole-v1"))  # a plain PPO: RL goes on from the imitation policy
    model.learn(256)
    assert isinstance(model, PPO)
