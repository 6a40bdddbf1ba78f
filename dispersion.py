"""
Dispersion losses: an auxiliary term D that pushes apart the hidden states of the tokens of each
sequence.

In a small Transformer the tokens of a sequence drift into a narrow cone with depth (embedding
condensation, arXiv 2602.00217); adding lambda * D to the cross-entropy rewards them for pointing
apart, with no new parameters. It is the repulsive half of a contrastive loss without positive pairs
(Wang & He, "Diffuse and Disperse", arXiv 2506.09027): the language-model loss already ties each
state to what it must predict.

Symbols: z_i the hidden state of token i of one sequence (T tokens, C channels); cos_ij the cosine
of z_i and z_j; D_ij = arccos(cos_ij) / pi their angular distance in [0, 1] (1/2 = orthogonal); tau
a temperature. Each loss below is written once, as a plain differentiable function of
z [N, T, C] (N sequences) -> [N]; the loss of a batch is the mean over its sequences, and pairs
never cross sequences. The paper's four: angular, decorrelation, l2_repel, orthogonal; Wang & He's
four: infonce_cos, infonce_l2, hinge, covariance, whose mean E_ij runs over the full T x T matrix,
self-pairs included, as their released code (github.com/raywang4/DispLoss) does.
"""

import math

import torch

KINDS = ("angular", "decorrelation", "l2_repel", "orthogonal", "infonce_cos", "infonce_l2", "hinge",
         "covariance")
DEFAULT_CLAMP = 1e-4  # t: cos is kept in [-1 + t, 1 - t], where arccos' slope is finite
DEFAULT_LAMBDA_NORM = 1.0
EPS = 1e-6  # floor on a token's norm: a zero token stays at zero instead of turning into 0/0 = NaN


# ------------------------------------------------------------------------------ the pieces

def unit(z):
    return z / z.norm(dim=-1, keepdim=True).clamp_min(EPS)


def gram(z):  # every token pair of every sequence in one batched product: [N, T, C] -> [N, T, T]
    return z @ z.transpose(-1, -2)


def angle(cos):
    """D_ij = arccos(cos_ij) / pi."""
    return torch.arccos(cos) / math.pi


def clamped_cos(z, clamp):
    """cos_ij, clamped to [-1 + t, 1 - t] in value only: the gradient passes as if unclamped
    (straight-through), so nearly collapsed tokens still feel the push, and arccos only ever sees
    values where its slope is finite."""
    cos = gram(unit(z))
    return cos + (cos.clamp(-1 + clamp, 1 - clamp) - cos).detach()


# ||z_i - z_j||^2 = |z_i|^2 + |z_j|^2 - 2 z_i.z_j, without a [N, T, T, C] difference tensor
def sqdist(z):
    sq = z.pow(2).sum(-1)
    return (sq[..., :, None] + sq[..., None, :] - 2 * gram(z)).clamp_min(0)


def offdiag(x, fill):  # x [N, T, T] with the self-pairs i == j replaced by `fill`
    return x.masked_fill(torch.eye(x.shape[-1], dtype=torch.bool, device=x.device), fill)


# log of the mean of exp(x) over `pairs` entries, via logsumexp: no underflow
def log_mean_exp(x, pairs):
    return torch.logsumexp(x.flatten(-2), dim=-1) - math.log(pairs)


# ------------------------------------------------------------------------------ the losses

def angular(z, tau, clamp):
    """The paper's dispersion loss: log mean_{i != j} exp(-D_ij / tau)."""
    T = z.shape[-2]
    return log_mean_exp(offdiag(-angle(clamped_cos(z, clamp)) / tau, -math.inf), T * (T - 1))


def decorrelation(z):
    """mean_{i != j} r_ij^2, r_ij the Pearson correlation of tokens i and j across their C
    channels."""
    T = z.shape[-2]
    r = gram(unit(z - z.mean(-1, keepdim=True)))
    return offdiag(r.pow(2), 0.0).sum((-2, -1)) / (T * (T - 1))


def l2_repel(z, tau, lambda_norm):
    """log mean_{i != j} exp(-||z_i - z_j||^2 / tau) + lambda_norm mean(z^2). Both terms grow as the
    square of a common scale of the tokens, the first summed over C channels, the second averaged
    over them: the norm term holds the scale only once lambda_norm is of order C / tau."""
    T = z.shape[-2]
    return (log_mean_exp(offdiag(-sqdist(z) / tau, -math.inf), T * (T - 1))
            + lambda_norm * z.pow(2).mean((-2, -1)))


def orthogonal(z, clamp):
    """mean_{i != j} max(0, 1/2 - D_ij)^2: only pairs closer than orthogonal pay."""
    T = z.shape[-2]
    return (offdiag((0.5 - angle(clamped_cos(z, clamp))).relu().pow(2), 0.0).sum((-2, -1))
            / (T * (T - 1)))


def infonce_cos(z, tau):
    """log E_ij exp(-d_ij / tau) with d_ij = -cos_ij."""
    return log_mean_exp(gram(unit(z)) / tau, z.shape[-2] ** 2)


def infonce_l2(z, tau):
    """log E_ij exp(-d_ij / tau) with d_ij = ||z_i - z_j||^2 / C (their code divides by the
    dimension)."""
    return log_mean_exp(-sqdist(z) / (z.shape[-1] * tau), z.shape[-2] ** 2)


def hinge(z, margin):
    """E_ij max(0, eps - d_ij)^2 with d_ij = ||z_i - z_j||^2 / C and eps = margin."""
    return (margin - sqdist(z) / z.shape[-1]).relu().pow(2).mean((-2, -1))


def covariance(z):
    """sum_{m != n} Cov_mn^2, Cov the C x C covariance over the sequence of the unit tokens
    (channels m, n). It decorrelates channels, and identical tokens (Cov = 0) are among its minima.
    ||U^T U||_F = ||U U^T||_F, so the T x T Gram gives the sum over all (m, n) without a C x C
    matrix; (T - 1) Cov_mm is channel m's sum of squares."""
    T = z.shape[-2]
    u = unit(z)
    u = u - u.mean(-2, keepdim=True)
    diag = u.pow(2).sum(-2)
    return (gram(u).pow(2).sum((-2, -1)) - diag.pow(2).sum(-1)) / (T - 1) ** 2


# ------------------------------------------------------------------------------ fast path

class AngularFast(torch.autograd.Function):
    """angular() with its gradient written out, which makes it about three times cheaper: autograd
    would keep and revisit a dozen [N, T, T] intermediates, this keeps two. Tested equal to
    angular(), values and gradients. With w_ij = exp(-D_ij / tau) (w_ii = 0) and S = sum_ij w_ij,
    from dD/dcos = -1 / (pi sqrt(1 - cos^2)):
        dL/dcos_ij = w_ij / (S tau pi sqrt(1 - cos_ij^2)),
    taken at the clamped cos and passed on whatever the clamp did (straight-through, as
    clamped_cos)."""

    @staticmethod
    def forward(ctx, z, tau, clamp):
        norm = z.norm(dim=-1, keepdim=True).clamp_min(EPS)
        u = z / norm
        cos = gram(u).clamp_(-1 + clamp, 1 - clamp)
        logw = angle(cos).mul_(-1 / tau)  # -D_ij / tau
        logw.diagonal(dim1=-2, dim2=-1).fill_(-math.inf)
        m = logw.amax((-2, -1), keepdim=True)  # log-sum-exp shift: no underflow for small tau
        w = logw.sub_(m).exp_()
        S = w.sum((-2, -1))
        ctx.save_for_backward(u, norm, cos, w, S)
        ctx.tau = tau
        T = z.shape[-2]
        return S.log() + m.flatten() - math.log(T * (T - 1))

    @staticmethod
    def backward(ctx, grad):
        u, norm, cos, w, S = ctx.saved_tensors
        # the 2: cos = u u^T, g_cos is symmetric
        scale = (2 * grad / (S * ctx.tau * math.pi))[:, None, None]
        # in place: one [N, T, T] buffer
        g_cos = cos.square().neg_().add_(1).rsqrt_().mul_(w).mul_(scale)
        g_u = g_cos @ u
        return (g_u - u * (u * g_u).sum(-1, keepdim=True)) / norm, None, None  # through u = z / |z|


# ------------------------------------------------------------------------------ the entry point

def dispersion_loss(h, kind="angular", tau=1.0, max_tokens=256, clamp=DEFAULT_CLAMP,
                    lambda_norm=DEFAULT_LAMBDA_NORM, hinge_margin=1.0, generator=None, fast=True):
    """Mean over sequences of the loss `kind`. h [..., T, C]: every leading index is a sequence, so
    stacked layers [L, B, T, C] give the mean over layers and sequences in one call. In float32
    (autocast off) whatever h's dtype. Sequences longer than max_tokens are sampled: max_tokens
    random positions each, drawn from `generator` (0 or None: every token). fast: the angular loss
    through AngularFast. train.py's flags check the arguments."""
    T, C = h.shape[-2:]
    z = h.reshape(-1, T, C)
    if max_tokens and T > max_tokens:
        # an independent random subset per sequence: the top-k of uniform noise is a uniform
        # k-subset, and one call draws it for every sequence at once (gathered before the upcast, so
        # only the subset is copied)
        idx = torch.rand(z.shape[0], T, generator=generator,
                         device=z.device).topk(max_tokens, dim=-1).indices
        z = z.gather(1, idx[..., None].expand(-1, -1, C))
    with torch.autocast(device_type=h.device.type, enabled=False):
        z = z.float()
        losses = {"angular": lambda: (AngularFast.apply(z, tau, clamp) if fast
                                      else angular(z, tau, clamp)),
                  "decorrelation": lambda: decorrelation(z),
                  "l2_repel": lambda: l2_repel(z, tau, lambda_norm),
                  "orthogonal": lambda: orthogonal(z, clamp),
                  "infonce_cos": lambda: infonce_cos(z, tau),
                  "infonce_l2": lambda: infonce_l2(z, tau), "hinge": lambda: hinge(z, hinge_margin),
                  "covariance": lambda: covariance(z)}
        return losses[kind]().mean()


def layer_dispersion(hidden, layers, **kwargs):
    """D averaged over the chosen blocks (--disp_layers as block indices) and the batch's sequences,
    the blocks' outputs stacked into one call. Block i's output is hidden[i + 1]: the embeddings
    hidden[0] are never dispersed, and the last block's output is taken after the final LayerNorm
    ln_f, as in Hugging Face's hidden states (which the paper's code uses)."""
    return dispersion_loss(torch.stack([hidden[i + 1] for i in layers]), **kwargs)
