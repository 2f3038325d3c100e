"""SFG building blocks: each kernel's group distribution p, the grouped layer over stacked streams, the stream mix.

Streams are held as one tensor [B, G, C, ...] with G = T + 1 groups (index 0 the shared group, t = 1..T the
tasks). Viewed as [B * G, C, ...] it is a batch for one conv / linear call; viewed as [B, G * C, ...] it is a
channel stack for one BatchNorm call whose statistics are separate per group.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones.layers import LayerSpec, build_layer
from ...nn import TaskBatchNorm

SHARED = 0  # index of the shared (generalist) group; task t is group t + 1
P_INITS = ("uniform", "dirichlet", "vertex")
P_NORMALISATIONS = ("softplus", "softmax")
VERTEX_MASS = 0.99  # the published code's near-vertex start puts 0.99 on one group


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """log(exp(y) - 1), computed stably, so that softplus(inverse_softplus(y)) == y."""
    return y + torch.log(-torch.expm1(-y))


def initial_probabilities(kernels: int, groups: int, init: str, generator: torch.Generator) -> torch.Tensor:
    """p at the start: uniform, Dirichlet(1, ..., 1), or each kernel near a vertex (groups dealt out at random)."""
    if init == "uniform":
        return torch.full((kernels, groups), 1.0 / groups)
    if init == "dirichlet":  # normalised Exp(1) draws are Dirichlet(1, ..., 1)
        draws = -torch.log(torch.rand(kernels, groups, generator=generator).clamp_min(1e-12))
        return draws / draws.sum(1, keepdim=True)
    if init == "vertex":
        order = torch.randperm(kernels, generator=generator)
        p = torch.full((kernels, groups), (1.0 - VERTEX_MASS) / max(groups - 1, 1))
        p[order, torch.arange(kernels) % groups] = VERTEX_MASS if groups > 1 else 1.0
        return p
    raise ValueError(f"unknown p_init {init!r}; valid: {', '.join(P_INITS)}")


class KernelGroups(nn.Module):
    """p^{(l)}: every kernel's categorical distribution over the G groups, from unconstrained logits theta."""

    def __init__(self, kernels: int, groups: int, normalise: str, init: str, generator: torch.Generator,
                 lr_scale: float = 1.0):
        super().__init__()
        if normalise not in P_NORMALISATIONS:
            raise ValueError(f"unknown p_normalise {normalise!r}; valid: {', '.join(P_NORMALISATIONS)}")
        self.normalise, self.lr_scale = normalise, float(lr_scale)
        p = initial_probabilities(kernels, groups, init, generator).clamp_min(1e-6)
        theta = inverse_softplus(p) if normalise == "softplus" else torch.log(p)
        self.scaled_logits = nn.Parameter(theta / self.lr_scale)

    @property
    def logits(self) -> torch.Tensor:
        """theta = lr_scale * phi: under Adam, theta moves lr_scale times as far per step as a weight does."""
        return self.scaled_logits * self.lr_scale

    def forward(self) -> torch.Tensor:
        """p [kernels, G]: softplus(theta) / sum softplus(theta) (published code) or softmax(theta)."""
        if self.normalise == "softmax":
            return torch.softmax(self.logits, dim=1)
        positive = F.softplus(self.logits)
        return positive / positive.sum(1, keepdim=True)

    def entropy(self) -> torch.Tensor:
        """Mean over kernels of H(p_k) = -sum_g p_kg log p_kg."""
        p = self().clamp_min(1e-12)
        return -(p * p.log()).sum(1).mean()

    def sample(self, tau: float, hard: bool, batch: int | None, generator: torch.Generator) -> torch.Tensor:
        """Gumbel-softmax z = softmax((g + log p) / tau), g ~ Gumbel(0, 1); hard: one-hot forward, soft gradient.

        One draw per kernel shared by the batch ([kernels, G]) or, with `batch`, one per example ([B, kernels, G]).
        """
        shape = ((batch,) if batch else ()) + tuple(self.scaled_logits.shape)
        uniform = torch.rand(shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7).to(self.scaled_logits.device)
        gumbel = -torch.log(-torch.log(uniform))
        soft = torch.softmax((gumbel + self().clamp_min(1e-12).log()) / tau, dim=-1)
        if not hard:
            return soft
        one_hot = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        return one_hot - soft.detach() + soft  # straight-through: the value is one-hot, the gradient the soft one

    def allocation(self) -> torch.Tensor:
        """Each kernel's group index in the argmax allocation (see `argmax_allocation`)."""
        return argmax_allocation(self().detach())

    def argmax(self) -> torch.Tensor:
        """The argmax allocation as one-hot z [kernels, G]."""
        return F.one_hot(self.allocation(), self.scaled_logits.shape[1]).to(self.scaled_logits.dtype)


def argmax_allocation(p: torch.Tensor) -> torch.Tensor:
    """argmax_g p_kg per kernel; if that leaves no shared kernel, the kernel with the largest p_shared is shared.

    Every block of the next layer reads the shared stream, so keeping it non-empty keeps every exported block
    fed by an input (an empty shared stream would leave blocks that compute only their bias).
    """
    groups = p.argmax(1)
    if not bool((groups == SHARED).any()):
        groups[p[:, SHARED].argmax()] = SHARED
    return groups


class GroupedLayer(nn.Module):
    """One backbone layer whose kernels belong to G groups: group g's kernels read stream g.

    All groups run in one conv / linear call over the stacked streams, with BatchNorm statistics and a scale and
    shift per group: u_g = pool(act(BN_g(W * s_g + b))). Group g keeps only its kernels, y_g = z_g * u_g
    (`keep_assigned`). In the first layer every stream is the input, so the groups share one batch statistic.
    """

    def __init__(self, spec: LayerSpec, in_shape: tuple[int, ...], groups: int, reads_input: bool,
                 probabilities: KernelGroups):
        super().__init__()
        self.spec, self.groups, self.reads_input = spec, groups, reads_input
        statistics = partial(TaskBatchNorm, tasks=1 if reads_input else groups, affine=False)
        self.op, self.norm, self.act, self.post = build_layer(spec, spec.in_features(in_shape), statistics)
        if spec.norm:
            self.norm_weight = nn.Parameter(torch.ones(groups, spec.width))
            self.norm_bias = nn.Parameter(torch.zeros(groups, spec.width))
        self.probabilities = probabilities

    def forward(self, streams: torch.Tensor) -> torch.Tensor:
        """streams [B, G, *in_shape] (the first layer: the input [B, *in_shape], read by every group)
        -> every kernel's output on every stream, u [B, G, *out_shape]."""
        batch = streams.shape[0]
        if self.reads_input:  # every stream is the input: one op, then each group's scale and shift
            y = self._norm_shared_input(self._op(streams)).flatten(1, 2)
        else:
            y = self._op(streams.flatten(0, 1)).unflatten(0, (batch, self.groups)).flatten(1, 2)
            if isinstance(self.norm, TaskBatchNorm):
                y = self.norm.forward_stacked(y, self.norm_weight.view(-1), self.norm_bias.view(-1))
        y = self.post(self.act(y))
        return y.view(batch, self.groups, self.spec.width, *y.shape[2:])

    def _op(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x.flatten(1) if self.spec.type == "linear" else x)

    def _norm_shared_input(self, y: torch.Tensor) -> torch.Tensor:
        """BN_g of one map y [B, C, ...] for every group g -> [B, G, C, ...]. The groups' batch statistics are
        equal, so y is normalised once and only the per-group scale and shift are applied G times: the same
        values as G separate BatchNorms."""
        if not isinstance(self.norm, TaskBatchNorm):
            return y.unsqueeze(1).expand(y.shape[0], self.groups, *y.shape[1:]).contiguous()
        shape = (self.groups, self.spec.width) + (1,) * (y.dim() - 2)
        return torch.addcmul(self.norm_bias.view(shape), self.norm.forward_stacked(y).unsqueeze(1),
                             self.norm_weight.view(shape))

    def norm_state(self, group: int, kernels: torch.Tensor) -> dict | None:
        """Group `group`'s BatchNorm state for `kernels`, on the CPU, in BatchNorm's names; None without norm."""
        if not isinstance(self.norm, TaskBatchNorm):
            return None
        row = 0 if self.reads_input else group
        state = {"weight": self.norm_weight[group], "bias": self.norm_bias[group],
                 "running_mean": self.norm.running_mean[row], "running_var": self.norm.running_var[row]}
        state = {name: value.detach().cpu()[kernels] for name, value in state.items()}
        return {**state, "num_batches_tracked": self.norm.num_batches_tracked.cpu()}


def keep_assigned(u: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """y_g = z_g * u_g for u [B, G, C, ...] and z [C, G] (one allocation) or [B, C, G] (one per example)."""
    groups, width = z.shape[-1], z.shape[-2]
    return u * z.transpose(-1, -2).reshape(-1, groups, width, *([1] * (u.dim() - 3)))


class StreamMix(nn.Module):
    """The next streams: shared s_0 = y_0; task s_t = A_t y_t + B_t y_0 (a 1x1 conv over their concatenation,
    no bias) or the plain sum y_t + y_0. A_t = B_t = I at the start, so the mix begins as the sum."""

    def __init__(self, width: int, tasks: int, mode: str):
        super().__init__()
        self.mode, self.width = mode, width
        if mode == "conv1x1":
            eye = torch.eye(width)
            self.task_weight = nn.Parameter(eye.repeat(tasks, 1, 1))  # A_t [T, C_out, C_in]
            self.shared_weight = nn.Parameter(eye.repeat(tasks, 1, 1))  # B_t
        elif mode != "sum":
            raise ValueError(f"unknown combine {mode!r}; valid: conv1x1, sum")

    def forward(self, u: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The next streams [B, G, C, ...] from the unmasked group outputs u and the allocation z."""
        tasks, width = u.shape[1] - 1, self.width
        if self.mode == "sum" or z.dim() == 3:
            shared, own = keep_assigned(u, z).split([1, tasks], 1)
            if self.mode == "sum":
                return torch.cat([shared, own + shared], 1)
            task_weight, shared_weight = self.task_weight, self.shared_weight
        else:  # one allocation for the batch: A_t (z_t * u_t) = (A_t diag z_t) u_t, so z goes into the weights
            shared, own = u.split([1, tasks], 1)
            task_weight = self.task_weight * z[:, 1:].t().unsqueeze(1)
            shared_weight = self.shared_weight * z[:, 0]
        batch, spatial = u.shape[0], u.shape[3:]
        # A_t y_t for every t as one batched matrix product over the tasks (a grouped 1x1 conv took 2-3.5x as long
        # forward and backward on VGG-11's maps), and B_t y_0 for every t as one product with the stacked B_t
        mixed = torch.einsum("tij,btjp->btip", task_weight, own.reshape(batch, tasks, width, -1)) + \
            torch.matmul(shared_weight.reshape(tasks * width, width), shared.reshape(batch, width, -1)).view(
                batch, tasks, width, -1)
        if z.dim() == 2:
            shared = shared * z[:, 0].view(1, 1, width, *([1] * len(spatial)))
        return torch.cat([shared, mixed.reshape(batch, tasks, width, *spatial)], 1)

    def matrices(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_t, B_t) for task index `task`; identities for the sum."""
        if self.mode == "sum":
            eye = torch.eye(self.width)
            return eye, eye
        return self.task_weight[task].detach(), self.shared_weight[task].detach()
