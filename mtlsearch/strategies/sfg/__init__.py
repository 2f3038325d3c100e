"""Stochastic Filter Groups (Bragman, Tanno et al., ICCV 2019), generalised from two tasks to T tasks.

Every kernel k of a trunk layer l has a categorical distribution p^{(l),k} over T + 1 groups (group 0 shared,
group t task t), learned with the weights by Gumbel-softmax variational inference. Symbols of the paper:

- p^{(l),k}: `KernelGroups()` of layer l, row k; parameterised by logits theta, p = softplus(theta) / sum
  (the published code; `p_normalise=softmax` for softmax(theta)).
- z ~ Softmax((g + log p) / tau), g ~ Gumbel(0, 1): `KernelGroups.sample`; tau: `tau0`, `tau_min`, `anneal_rate`.
- M^{(l),k}: the kernels of the grouped layers (`SFGNetwork.kernel_weights`); lambda1, lambda2: the settings.
- Objective: sum_t L_t + lambda1 sum ||M||^2 - lambda2 sum_l mean_k H(p^{(l),k}) (`extra_loss`).
- Task-t kernels read stream t, shared kernels the shared stream; the next stream t = A_t y_t + B_t y_shared
  (1x1 conv over their concatenation, `combine=conv1x1`) or y_t + y_shared (`combine=sum`).
"""
from .network import SFGNetwork
from .strategy import StochasticFilterGroups

__all__ = ["StochasticFilterGroups", "SFGNetwork"]
