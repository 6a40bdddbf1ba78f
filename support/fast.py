"""
measure.py's hand-written fast paths, each tested equal to the plain computation it replaces
(tests/test_measure.py): erank's C x C second moment (BatchMoment: each batch about its mean,
the lower triangle in column panels), and Spearman's and Kendall's rank correlations of many rows
at once (scipy's, one row at a time, for the bootstrap).
"""

import numpy as np
import torch
from scipy import stats


# Speed: erank's C x C moment costs L C^2 / 2 multiply-adds a token (about 4% of a GPT-2 forward
# pass). torch has no syrk (BLAS's one-triangle product), so the lower triangle is summed in column
# panels, in float32 over FLUSH_EVERY batches and then in float64. scipy's syrk, faster alone, made
# the whole pass slower: its threads and torch's took the cores from each other between calls.
MOMENT_PANELS = 8  # (P + 1) / 2P of a full matmul's work: 56% at P = 8
FLUSH_EVERY = 8


def panel_edges(C, panels=MOMENT_PANELS):
    """The column edges of the moment's panels: panel i holds rows edges[i]: and columns
    edges[i]:edges[i+1]."""
    return [round(C * i / panels) for i in range(panels + 1)]


def add_gram_lower(d, panels, edges):
    """panels[i] += d[:, a:]^T d[:, a:b] for d [n, C] and the column block [a, b) = edges[i:i+2]:
    the lower triangle of d^T d (and the diagonal blocks whole), one matmul per panel."""
    for panel, a, b in zip(panels, edges, edges[1:]):
        panel.addmm_(d[:, a:].T, d[:, a:b])


def flush_panels(panels, sums):
    """sums[i] += panels[i], in place on the device; the panels restart from 0."""
    for panel, total in zip(panels, sums):
        total.add_(panel)
        panel.zero_()


def gram_from_panels(sums, edges):
    """The symmetric [C, C] float64 matrix (numpy) whose lower triangle the panel sums hold."""
    out = torch.zeros(edges[-1], edges[-1], dtype=torch.float64, device=sums[0].device)
    for total, a, b in zip(sums, edges, edges[1:]):
        out[a:, a:b] = total
    out = out.tril_()  # the diagonal blocks filled the upper triangle near the diagonal too
    return (out + out.tril(-1).T).cpu().numpy()


class BatchMoment:
    """erank's second moment M = sum u u^T over all unit tokens u [C], per layer [L, C, C] float64
    (plainly: U^T U). Each batch is summed about its own mean mu, so that float32 rounding scales
    with the tokens' spread, not their length: sum u u^T = n mu mu^T + mu r^T + r mu^T + D^T D with
    D = u - mu, r = sum D; D^T D's lower triangle goes into column panels, summed in float32 over
    FLUSH_EVERY batches and then in float64."""

    def __init__(self, N, L, T, C, batch_size, device):
        self.N, self.T, self.C, self.batch_size = N, T, C, batch_size
        # each batch's mean unit token, as subtracted
        self.mus = np.zeros((-(-N // batch_size), L, C))
        self.edges = panel_edges(C)
        widths = list(zip(self.edges, self.edges[1:]))
        self.panels = [[torch.zeros(C - a, b - a, device=device) for a, b in widths]
                       for _ in range(L)]
        self.sums64 = [[torch.zeros_like(p, dtype=torch.float64) for p in layer]
                       for layer in self.panels]

    def add(self, layer, u, s_b):
        """One layer of one batch: u [B, T, C] the unit tokens (made D in place), s_b [B, C] their
        sums per text. -> mu [C], for end_batch (the caller copies it off the device with its own
        sums, one copy per batch)."""
        mu = (s_b.sum(0, dtype=torch.float64) / u[..., 0].numel()).float()
        add_gram_lower(u.sub_(mu).reshape(-1, self.C), self.panels[layer], self.edges)
        return mu

    def end_batch(self, batch, mus, last):
        """mus [L, C]: batch number `batch`'s means, on the host; last: the final batch."""
        self.mus[batch] = mus
        if (batch + 1) % FLUSH_EVERY == 0 or last:
            for panels, sums in zip(self.panels, self.sums64):
                flush_panels(panels, sums)

    def result(self, s):
        """-> M [L, C, C], with s [N, L, C] each text's sum of unit tokens (for r)."""
        starts = range(0, self.N, self.batch_size)
        counts = np.diff([*starts, self.N])[:, None] * self.T  # each batch's tokens, n
        # r = s - n mu per batch, float64
        rs = np.add.reduceat(s, starts) - counts[:, :, None] * self.mus
        out = np.empty((len(self.sums64), self.C, self.C))
        for layer, m in enumerate(out):  # a layer at a time: no second [L, C, C] array
            m[:], self.sums64[layer] = gram_from_panels(self.sums64[layer], self.edges), None
            mu, r = self.mus[:, layer], rs[:, layer]
            # the batches' n mu mu^T + mu r^T + r mu^T, all at once
            m += mu.T @ (counts * mu + r) + r.T @ mu
        return out


def rank_rows(y):
    """Spearman's rho and Kendall's tau-b of each row of y [B, L] against 0..L-1, all rows at once
    (for the bootstrap); the same numbers as scipy's, ties included."""
    r = stats.rankdata(y, axis=1)
    r, x = r - r.mean(1, keepdims=True), np.arange(y.shape[1]) - (y.shape[1] - 1) / 2
    i, j = np.triu_indices(y.shape[1], 1)
    s = np.sign(y[:, j] - y[:, i])
    with np.errstate(invalid="ignore", divide="ignore"):
        # rho = Pearson correlation of the ranks
        rho = r @ x / np.sqrt((r**2).sum(1) * (x**2).sum())
        # (conc. - disc.) / sqrt(n0 (n0 - ties))
        kendall = s.sum(1) / np.sqrt(len(i) * (len(i) - (s == 0).sum(1)))
    return rho, kendall
