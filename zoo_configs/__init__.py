"""The RL Zoo-style configs, kept at the top of the repository and installed as ``sb3_il.zoo_configs``."""
