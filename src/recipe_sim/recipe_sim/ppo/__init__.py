"""PPO specialists on rsl-rl-lib: config, runner, checkpoints with metadata, export, evaluation.

Modules: ``config`` (config/ppo.yaml profiles), ``action_head`` (actor output offset/scale),
``runner`` (SpecialistRunner: safe load, metadata on save, per-iteration metrics), ``checkpoint``,
``export`` (TorchScript/ONNX + ``load_exported_policy``), ``envs`` (CLI choices -> RecipeVecEnv),
``training`` (one specialist end to end), ``evaluation`` (success per object and condition),
``progress`` (console bar). The CLIs are ``recipe_sim.train`` and ``recipe_sim.evaluate``.
"""
