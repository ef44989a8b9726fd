"""Divide-and-conquer distillation (paper Sec. III-C/D): success-filtered rollouts of the specialists with
depth (``collect``), deterministic replay (``replay``) and closed-loop evaluation of the generalist
(``eval_generalist``).
The model, dataset format, training and runtime live in recipe_policy (they run without the simulator)."""
