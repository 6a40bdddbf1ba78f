"""
Dispersion losses: an auxiliary term that pushes apart the hidden states of the tokens of each sequence.

In a small Transformer the tokens of a sequence drift into a narrow cone with depth (embedding condensation,
arXiv 2602.00217); lambda * L_disp added to the cross-entropy rewards them for pointing apart, with no new
parameters. It is the repulsive half of a contrastive loss without positive pairs (Wang & He, "Diffuse and
Disperse", arXiv 2506.09027): the language-model loss already ties each state to what it must predict.

Z is the [T, C] hidden states of one sequence (tokens z_i); cos_ij is the cosine of z_i and z_j;
D_ij = arccos(cos_ij) / pi is their angular distance in [0, 1] (1/2 = orthogonal). Per sequence:
  angular        log mean_{i!=j} exp(-D_ij / tau)                       (the paper's dispersion loss)
  decorrelation  mean_{i!=j} r_ij^2, r = Pearson correlation of two tokens across their C channels
  l2_repel       log mean_{i!=j} exp(-||z_i - z_j||^2 / tau) + lambda_norm * mean(z^2)
  orthogonal     mean_{i!=j} max(0, 1/2 - D_ij)^2                        (only acute pairs pay)
and Wang & He's four variants, their D written d here. E_ij runs over the full T x T matrix, self-pairs
included, as their released code (github.com/raywang4/DispLoss) does for InfoNCE-L2:
  infonce_cos    log E_ij exp(-d_ij / tau),  d_ij = -cos_ij
  infonce_l2     log E_ij exp(-d_ij / tau),  d_ij = ||z_i - z_j||^2 / C   (their code divides by the dimension)
  hinge          E_ij max(0, eps - d_ij)^2,  d_ij = ||z_i - z_j||^2 / C   (eps = hinge_margin)
  covariance     sum_{m!=n} Cov_mn^2, Cov the C x C covariance of the l2-normalised tokens (channels m, n);
                 it decorrelates channels, and identical tokens (Cov = 0) are among its minima
The loss of a batch is the mean over its sequences; pairs never cross sequences.
"""

import math

import torch

KINDS = ("angular", "decorrelation", "l2_repel", "orthogonal", "infonce_cos", "infonce_l2", "hinge", "covariance")
DEFAULT_CLAMP = 1e-4  # t: cos is kept in [-1 + t, 1 - t] so arccos' slope stays finite
DEFAULT_LAMBDA_NORM = 1.0
EPS = 1e-6  # floor on a token's norm: a zero token is left at zero instead of turning into 0/0 = NaN


def _unit(z):
    return z / z.norm(dim=-1, keepdim=True).clamp_min(EPS)


def _gram(z):  # all token pairs of every sequence in one batched product: [N, T, C] -> [N, T, T]
    return z @ z.transpose(-1, -2)


def _angle(cos):
    """D_ij = arccos(cos_ij) / pi, the angular distance in [0, 1]: every angular kind reads it from here."""
    return torch.arccos(cos) / math.pi


def _clamped_cos(z, clamp):
    """cos_ij, clamped to [-1+clamp, 1-clamp] in value only: the gradient passes as if unclamped (straight-through),
    so tokens that are nearly collapsed still feel the push, and arccos, whose slope is infinite at +-1, only ever
    sees values where its slope is finite."""
    cos = _gram(_unit(z))
    return cos + (cos.clamp(-1 + clamp, 1 - clamp) - cos).detach()


def _sqdist(z):  # ||z_i - z_j||^2 = |z_i|^2 + |z_j|^2 - 2 z_i.z_j, without a [N, T, T, C] difference tensor
    sq = z.pow(2).sum(-1)
    return (sq[..., :, None] + sq[..., None, :] - 2 * _gram(z)).clamp_min(0)


class _Angular(torch.autograd.Function):
    """The angular loss, log mean_{i!=j} exp(-D_ij / tau), with its gradient written out. Autograd would keep and
    revisit a dozen [N, T, T] intermediates; this keeps two, which makes the loss about three times cheaper.
    With w_ij = exp(-D_ij / tau) (w_ii = 0) and S = sum_ij w_ij:
        dL/dcos_ij = w_ij / (S tau pi sqrt(1 - cos_ij^2))      (dD/dcos = -1 / (pi sqrt(1 - cos^2)))
    taken at the clamped cos and passed on whatever the clamp did: the straight-through gradient."""

    @staticmethod
    def forward(ctx, z, tau, clamp):
        norm = z.norm(dim=-1, keepdim=True).clamp_min(EPS)
        u = z / norm
        cos = _gram(u).clamp_(-1 + clamp, 1 - clamp)
        logw = _angle(cos).mul_(-1 / tau)  # -D_ij / tau
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
        scale = (2 * grad / (S * ctx.tau * math.pi))[:, None, None]  # the 2: cos = u u^T, g_cos is symmetric
        g_cos = cos.square().neg_().add_(1).rsqrt_().mul_(w).mul_(scale)  # in place: one [N, T, T] buffer
        g_u = g_cos @ u
        return (g_u - u * (u * g_u).sum(-1, keepdim=True)) / norm, None, None  # through u = z / |z|


def _offdiag(x, fill):  # x [N, T, T] with the self-pairs i == j replaced by `fill`
    return x.masked_fill(torch.eye(x.shape[-1], dtype=torch.bool, device=x.device), fill)


def _log_mean_exp(x, pairs):  # log mean exp(x) over the last two dims, via logsumexp: no underflow to log(0)
    return torch.logsumexp(x.flatten(-2), dim=-1) - math.log(pairs)


def _per_sequence(z, kind, tau, clamp, lambda_norm, hinge_margin):
    """z: [N, T, C] float32, N independent sequences -> [N] losses."""
    T, C = z.shape[-2:]
    pairs = T * (T - 1)  # ordered pairs i != j
    if kind == "angular":  # log mean_{i!=j} exp(-D_ij / tau), see _Angular
        return _Angular.apply(z, tau, clamp)
    if kind == "orthogonal":  # mean_{i!=j} max(0, 1/2 - D_ij)^2
        return _offdiag((0.5 - _angle(_clamped_cos(z, clamp))).relu().pow(2), 0.0).sum((-2, -1)) / pairs
    if kind == "decorrelation":  # mean_{i!=j} r_ij^2; r_ij = cosine of the tokens centred over their channels
        r = _gram(_unit(z - z.mean(-1, keepdim=True)))
        return _offdiag(r.pow(2), 0.0).sum((-2, -1)) / pairs
    if kind == "l2_repel":  # log mean_{i!=j} exp(-||z_i - z_j||^2 / tau) + lambda_norm * mean(z^2)
        # both terms grow as the square of a common scale s of the tokens, the first summed over C channels, the
        # second averaged over them: the norm term holds the scale only once lambda_norm is of order C / tau
        return _log_mean_exp(_offdiag(-_sqdist(z) / tau, -math.inf), pairs) + lambda_norm * z.pow(2).mean((-2, -1))
    if kind == "infonce_cos":  # log E_ij exp(-d_ij / tau), d_ij = -cos_ij
        return _log_mean_exp(_gram(_unit(z)) / tau, T * T)
    if kind == "infonce_l2":  # log E_ij exp(-d_ij / tau), d_ij = ||z_i - z_j||^2 / C
        return _log_mean_exp(-_sqdist(z) / (C * tau), T * T)
    if kind == "hinge":  # E_ij max(0, eps - d_ij)^2, d_ij = ||z_i - z_j||^2 / C
        return (hinge_margin - _sqdist(z) / C).relu().pow(2).mean((-2, -1))
    # covariance: sum_{m!=n} Cov_mn^2 with Cov = U^T U / (T-1), U the l2-normalised tokens centred over the
    # sequence. ||U^T U||_F = ||U U^T||_F, so the T x T Gram gives the sum over all (m, n) without a C x C
    # matrix; (T-1) Cov_mm is each channel's sum of squares.
    u = _unit(z)
    u = u - u.mean(-2, keepdim=True)
    diag = u.pow(2).sum(-2)
    return (_gram(u).pow(2).sum((-2, -1)) - diag.pow(2).sum(-1)) / (T - 1) ** 2


def dispersion_loss(h, kind="angular", tau=1.0, max_tokens=256, clamp=DEFAULT_CLAMP, lambda_norm=DEFAULT_LAMBDA_NORM,
                    hinge_margin=1.0, generator=None):
    """Mean over sequences of the per-sequence dispersion loss `kind` (see the module docstring).

    h: [..., T, C]; every leading index is an independent sequence, so L stacked layers [L, B, T, C] give the mean
    over layers and sequences in one call. Computed in float32 (autocast off) whatever h's dtype; returns a
    float32 scalar. When T > max_tokens, max_tokens random positions are drawn for each sequence (from
    `generator`, a torch.Generator on h's device, for reproducibility); otherwise (or max_tokens 0/None) exact.
    clamp: the cos margin t of the angular kinds; lambda_norm: l2_repel's norm weight; hinge_margin: hinge's eps.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dispersion kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive number, got {tau!r}")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 0 or max_tokens == 1):
        raise ValueError(f"max_tokens must be 0/None (all tokens) or an integer >= 2, got {max_tokens!r}")
    if not (isinstance(clamp, (int, float)) and 0 < clamp < 1):
        raise ValueError(f"clamp must be in (0, 1), got {clamp!r}")
    if not (isinstance(lambda_norm, (int, float)) and math.isfinite(lambda_norm) and lambda_norm >= 0):
        raise ValueError(f"lambda_norm must be a number >= 0, got {lambda_norm!r}")
    if not (isinstance(hinge_margin, (int, float)) and math.isfinite(hinge_margin) and hinge_margin > 0):
        raise ValueError(f"hinge_margin must be a positive number, got {hinge_margin!r}")
    if not (torch.is_tensor(h) and h.is_floating_point() and h.dim() >= 2):
        raise ValueError(f"h must be a floating-point tensor [..., T, C], got {getattr(h, 'shape', type(h))}")
    T, C = h.shape[-2:]
    if T < 2 or C < 1 or h.numel() == 0:
        raise ValueError(f"h needs at least 2 tokens and 1 channel per sequence, got shape {tuple(h.shape)}")
    if generator is not None and generator.device.type != h.device.type:
        raise ValueError(f"generator is on {generator.device} but h is on {h.device}; they must match")

    z = h.reshape(-1, T, C)
    if max_tokens and T > max_tokens:
        # an independent random subset per sequence: the top-k of uniform noise is a uniform k-subset, and one
        # call draws it for every sequence at once (gathered before the upcast, so only the subset is copied)
        idx = torch.rand(z.shape[0], T, generator=generator, device=z.device).topk(max_tokens, dim=-1).indices
        z = z.gather(1, idx[..., None].expand(-1, -1, C))
    with torch.autocast(device_type=h.device.type, enabled=False):
        return _per_sequence(z.float(), kind, tau, clamp, lambda_norm, hinge_margin).mean()


def parse_layers(spec, n_layer):
    """Which block outputs to disperse: 'all', 'last', 'early' (the first n_layer // 2 blocks, at least one),
    'late' (the rest: the second half, the middle block of an odd depth included) or a comma list of block
    indices 0..n_layer-1. Returns sorted block indices; block i's output is hidden[i + 1] (hidden[0], the
    embedding output, is never included)."""
    if not (isinstance(n_layer, int) and n_layer >= 1):
        raise ValueError(f"n_layer must be a positive integer, got {n_layer!r}")
    s = str(spec).strip().lower()
    named = {"all": range(n_layer), "last": [n_layer - 1], "early": range(max(1, n_layer // 2)),
             "late": range(n_layer // 2, n_layer)}
    if s in named:
        return list(named[s])
    parts = [p.strip() for p in s.split(",")]
    if not s or not all(p.lstrip("-").isdigit() for p in parts):
        raise ValueError(f"bad layer spec {spec!r}: expected all, last, early, late or comma-separated block "
                         f"indices such as 0,5,11")
    layers = [int(p) for p in parts]
    bad = [i for i in layers if not 0 <= i < n_layer]
    if bad:
        raise ValueError(f"layer spec {spec!r}: block indices {bad} out of range 0..{n_layer - 1}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layer spec {spec!r} repeats a block index")
    return sorted(layers)


def layer_dispersion(hidden, layers, **kwargs):
    """Dispersion averaged over the chosen blocks: hidden is the model's list (embedding output, then one entry per
    block), layers are block indices from parse_layers. The blocks are stacked and done in one call."""
    if not layers or max(layers) + 1 >= len(hidden) or min(layers) < 0:
        raise ValueError(f"layers {layers} do not fit a model with {len(hidden) - 1} blocks")
    return dispersion_loss(torch.stack([hidden[i + 1] for i in layers]), **kwargs)
