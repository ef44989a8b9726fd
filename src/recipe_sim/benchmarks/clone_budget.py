"""How precisely a distilled policy must fit its specialist: plain MLP clones at several training budgets.

A generalist sees more than its specialist (depth), yet succeeds less often. This benchmark separates the
fit from everything else: it clones the specialist with the simplest learner there is (an MLP from the
specialist's own observation, the dataset's ``obs_state``, to its action, one row, executed at 10 Hz like
the specialist), at each ``--budgets STEPSxBATCH``, and runs every clone and the specialist on the same
seeded episodes through ``eval_generalist``'s runtime. Same input, same rate, no diffusion, no chunks: what
separates a clone from the specialist is only how well it was fitted. The validation error (MSE of the
[-1, 1]-normalized action on held-out rows) is printed beside each success, so a diffusion run's budget
(optimizer steps x batch) can be read against this curve. ``--generalists`` puts diffusion runs trained on
the same dataset on it too: the error of the chunk row they execute first (the newest observation's), on their
own validation episodes, with the same normalization, and their success on the same episodes.

    ./dev bench clone_budget --dataset runs/distill/grasp_reach.zarr
    ./dev bench clone_budget --dataset D --budgets 4000x64 12000x64 20000x256 --episodes 512 --seed 6000
    ./dev bench clone_budget --dataset D --budgets 4000x64 --generalists runs/generalist/gr_nodepth_obs

Writes ``clone_budget.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

VALIDATION_ROWS = 2000


def parse_budget(text: str) -> tuple[int, int]:
    """'4000x64' -> (4000 optimizer steps, batch 64); a clear error otherwise."""
    steps, sep, batch = text.lower().partition("x")
    if not sep or not steps.isdigit() or not batch.isdigit() or int(steps) < 1 or int(batch) < 1:
        raise ValueError(f"--budgets: {text!r} is not STEPSxBATCH (e.g. 4000x64)")
    return int(steps), int(batch)


class MLPClone:
    """An MLP from one observation row to one action row, with the normalizers it was trained with.

    Behaves like an exported specialist actor (``obs_dim``, ``info``, ``__call__`` on (N, D) arrays), so
    ``SpecialistPolicy`` wraps it with the specialist's own spec and the runtime drives it the same way."""

    def __init__(self, x: np.ndarray, y: np.ndarray, width: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.obs_dim = x.shape[1]
        self.info: dict[str, Any] = {}
        self.x_mean, self.x_std = x.mean(0), x.std(0) + 1e-6
        self.y_lo, self.y_span = y.min(0), np.maximum(y.max(0) - y.min(0), 1e-9)
        self.net = nn.Sequential(
            nn.Linear(self.obs_dim, width), nn.ELU(),
            nn.Linear(width, width), nn.ELU(),
            nn.Linear(width, width), nn.ELU(),
            nn.Linear(width, y.shape[1]),
        )

    def inputs(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(((x - self.x_mean) / self.x_std).astype(np.float32))

    def targets(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((2.0 * (y - self.y_lo) / self.y_span - 1.0).astype(np.float32))

    def fit(self, x: np.ndarray, y: np.ndarray, steps: int, batch: int, lr: float, seed: int) -> float:
        """AdamW with a cosine schedule; returns the validation MSE (normalized actions)."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(x))
        val, train = order[:VALIDATION_ROWS], order[VALIDATION_ROWS:]
        xt, yt = self.inputs(x), self.targets(y)
        opt = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        self.net.train()
        for _ in range(steps):
            b = torch.as_tensor(train[rng.integers(0, len(train), batch)])
            loss = nn.functional.mse_loss(self.net(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        self.net.eval()
        with torch.no_grad():
            return float(nn.functional.mse_loss(self.net(xt[val]), yt[val]))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.net(self.inputs(np.atleast_2d(np.asarray(obs, dtype=np.float64)))).numpy()
        return (out + 1.0) / 2.0 * self.y_span + self.y_lo


def generalist_row_mse(policy: Any, ds: Any, clone: MLPClone, max_windows: int = 4000) -> float:
    """A generalist's executed-row error (``recipe_policy.train.executed_row_mse``) in ``clone``'s
    normalization, on the validation episodes of its own training run (``split_episodes``, its seed)."""
    from recipe_policy.train import executed_row_mse, split_episodes
    from recipe_policy.training_data import WindowSampler

    prof = policy.model.profile
    _, val_eps = split_episodes(ds.n_episodes, prof.training.seed)
    windows = WindowSampler(ds, val_eps, prof.n_obs_steps, prof.horizon, policy.spec.depth,
                            state_key=prof.training.state_key)
    idx = np.random.default_rng(0).permutation(windows.size)[:max_windows]
    return executed_row_mse(policy.model, windows, idx, 256, policy.generator,
                            lambda a: clone.targets(a.double().numpy()))


def main(argv: list[str] | None = None) -> int:
    from recipe_common.paths import config_path
    from recipe_policy.config import load_runtime_config
    from recipe_policy.dataset import open_dataset
    from recipe_policy.loading import load_policy
    from recipe_policy.specialist import SpecialistPolicy
    from recipe_sim.distill.eval_generalist import DEFAULT_RANDOMIZATION, evaluate

    p = argparse.ArgumentParser(prog="clone_budget", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="a collect dataset (zarr) of one specialist")
    p.add_argument("--specialist", default=None, help="its specialist (default: the dataset's first source)")
    p.add_argument("--budgets", nargs="+", default=["4000x64", "12000x64", "20000x256"],
                   metavar="STEPSxBATCH")
    p.add_argument("--generalists", nargs="*", default=[], metavar="REF",
                   help="diffusion runs trained on --dataset to place on the curve (load_policy refs)")
    p.add_argument("--inference-steps", type=int, default=2, help="their DDIM steps (default 2, as deployed)")
    p.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate (default: the cpu profile's)")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--episodes", type=int, default=512)
    p.add_argument("--seed", type=int, default=6000, help="evaluation seed (keep apart from collection)")
    p.add_argument("--randomization", type=Path, default=None,
                   help=f"evaluation randomization (default config/{DEFAULT_RANDOMIZATION})")
    p.add_argument("--out", type=Path, default=Path("runs/bench/clone_budget"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        budgets = [parse_budget(b) for b in a.budgets]
        ds = open_dataset(a.dataset)
        sources = [s for s in ds.record.get("sources", []) if s.get("kind") == "specialist"]
        name = a.specialist or (sources[0]["name"] if sources else None)
        if name is None:
            raise ValueError(f"{a.dataset}: no specialist source recorded; name --specialist")
        specialist = load_policy(name)
        x = np.asarray(ds.steps("obs_state"), dtype=np.float64)
        y = np.asarray(ds.steps("action"), dtype=np.float64)
    except (FileNotFoundError, ValueError, RuntimeError, KeyError) as exc:
        print(f"clone_budget: error: {exc}", file=sys.stderr)
        return 1
    policies: dict[str, Any] = {"specialist": specialist}
    fits: dict[str, dict[str, float]] = {}
    for steps, batch in budgets:
        label = f"clone_{steps}x{batch}"
        t0 = time.perf_counter()
        clone = MLPClone(x, y, a.width, seed=0)
        val = clone.fit(x, y, steps, batch, a.lr, seed=0)
        fits[label] = {"steps": steps, "batch": batch, "samples": steps * batch,
                       "epochs": steps * batch / len(x), "validation_mse": val,
                       "train_s": round(time.perf_counter() - t0, 1)}
        print(f"clone_budget: {label}: validation MSE {val:.2e} ({fits[label]['epochs']:.1f} epochs, "
              f"{fits[label]['train_s']:.0f} s)", file=sys.stderr)
        policies[label] = SpecialistPolicy(clone, specialist.spec, Path(str(a.dataset)))
    for ref in a.generalists:
        label = Path(ref).name
        gen = load_policy(ref, inference_steps=a.inference_steps)
        val = generalist_row_mse(gen, ds, clone)
        fits[label] = {"validation_mse": val, "steps": gen.record.get("training", {}).get("step", 0)}
        print(f"clone_budget: {label}: first executed row, validation MSE {val:.2e}", file=sys.stderr)
        policies[label] = gen
    objects = list(specialist.spec.objects)[:1]
    rand = a.randomization or config_path(DEFAULT_RANDOMIZATION)
    result = evaluate(policies, objects, ["randomized"], rand, a.episodes, a.seed, load_runtime_config(),
                      0.05, 1, log=lambda s: print(f"clone_budget: {s}", file=sys.stderr))
    per = result["conditions"]["randomized"]
    print(f"\nclone_budget: {objects[0]}, randomized ({Path(rand).name}), {a.episodes} episodes, "
          f"seed {a.seed}")
    print(f"{'policy':<22}{'samples':>10}{'epochs':>8}{'val MSE':>10}{'success':>9}{'vs spec':>9}")
    ref = per["specialist"]["_overall"]["success_rate"]
    for label in policies:
        rate = per[label]["_overall"]["success_rate"]
        f = fits.get(label)
        if f and "samples" in f:
            cols = f"{f['samples']:>10}{f['epochs']:>8.1f}{f['validation_mse']:>10.1e}"
        else:
            cols = f"{'':>18}{f['validation_mse']:>10.1e}" if f else f"{'':>28}"
        print(f"{label:<22}{cols}{100 * rate:>8.1f}%{rate / ref if ref else float('nan'):>8.3f}x")
    a.out.mkdir(parents=True, exist_ok=True)
    report = {"dataset": str(a.dataset), "specialist": name, "object": objects[0], "seed": a.seed,
              "episodes": a.episodes, "randomization": str(rand), "fits": fits,
              "success": {k: per[k]["_overall"]["success_rate"] for k in policies}}
    (a.out / "clone_budget.json").write_text(json.dumps(report, indent=1))
    print(f"clone_budget: wrote {a.out / 'clone_budget.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
