"""Config schemas of the analysis metrics (`metrics.ntk`, `metrics.hessian`, `metrics.pruning_limit`).

Kept free of project imports so that config.py can import them without an import cycle.
Value checks live next to the code in prune_cli/metrics/{ntk,hessian,pruning_limit}.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NTKMetricConfig:
    enabled: bool = False
    split: str = "test"  # train | val | test: where the fixed batch is drawn from
    num_inputs: int = 16  # inputs in the batch; kernel is num_inputs x num_inputs
    output: str = "sum"  # sum (f = sum of logits) | index (f = logit output_index) | trace (sum_k J_k J_k^T)
    output_index: int = 0  # logit used when output=index
    seed: int = 0  # draws the batch (the same inputs for every phase and model)


@dataclass
class HessianMetricConfig:
    enabled: bool = False
    samples: int = 512  # training examples the loss (and so the Hessian) averages over
    batch_size: int = 256  # examples per HVP chunk (bounds activation memory)
    hvp: str = "reuse_graph"  # reuse_graph (keep each chunk's gradient graph) | recompute (double backward per HVP)
    lanczos_iter: int = 64  # Lanczos steps per probe (capped at the number of parameters)
    lanczos_num: int = 1  # SLQ probes (Rademacher)
    hutchinson_probes: int = 32  # Rademacher probes for the trace
    top_k: int = 3  # largest Ritz values reported as top eigenvalues
    density_points: int = 500  # grid points of hessian_density.csv
    density_bandwidth: float = 0.01  # Gaussian kernel std as a fraction of the Ritz-value range
    seed: int = 0  # probes and the training subset


@dataclass
class PruningLimitConfig:
    enabled: bool = False
    ratios: int = 200  # sweep / prediction grid: rho = i / ratios, i = 0 .. ratios - 1
    split: str = "test"  # split the no-fine-tuning sweep is evaluated on
    eps_batch_size: int = 128  # minibatch size of the loss whose std is epsilon
    samples: int = 0  # training examples for the Hessian; 0 = the whole training split (as the paper)
    batch_size: int = 256  # examples per HVP chunk
    hvp: str = "recompute"  # recompute (memory of one chunk) | reuse_graph (faster, memory of all samples)
    lanczos_iter: int = 128
    lanczos_num: int = 1
    hutchinson_probes: int = 32
    flat_fraction: float = 0.0  # fraction f of flat directions (the authors use 0 for FC nets)
    tolerances: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.5, 1.0])  # accuracy drops (pp)
    seed: int = 0
