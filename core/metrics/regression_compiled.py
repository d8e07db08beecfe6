"""The regression bootstrap's sums per resample, compiled with numba (see regression.metrics_over_items).

A module of its own so that only evaluations large enough to gain from it import numba (about
0.25 s) and load the compiled kernel from numba's cache (about 0.5 s): see
regression.COMPILED_FROM_ITEMS.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["SUMS", "resample_sums"]

# One pass per resample for every sum the six metrics need. Written by hand with numba because no
# library reduces a bootstrap to these sums: numpy's version (regression._resample_sums_numpy:
# gathers, products and bincounts) makes a dozen passes and temporaries over the (resamples,
# items) arrays, 15-20x the time. numba compiles it once per machine (cache=True;
# ~1 s the first time); it starts no threads (no parallel=True).
SUMS = ("s_t", "s_p", "s_tt", "s_pp", "s_tp", "sae", "sse", "sxy", "sxx", "syy")


@numba.njit(cache=True, nogil=True)
def _block_ranks(counts, m, ranks):  # pragma: no cover (compiled)
    """Copies of each tie block (n_blocks,) of a resample of m values -> the centred average rank
    of each block into `ranks`, cumsum(c)[b] - c[b] / 2 - m / 2; returns the sum of the squared
    ranks over the resample and the block holding all m values (-1 if none)."""
    total, squares, mode = 0.0, 0.0, -1
    for q in range(counts.shape[0]):
        c = counts[q]
        total += c
        ranks[q] = total - 0.5 * c - 0.5 * m
        squares += c * ranks[q] * ranks[q]
        if c == m:
            mode = q
    return squares, mode


@numba.njit(cache=True, nogil=True)
def resample_sums(index, ct, cp, abs_error, block_t, n_blocks_t, block_p, n_blocks_p):  # pragma: no cover (compiled)
    """index (B, m) -> sums (B, 10) in the order of SUMS, and the tie block holding all m values
    of y_true and of y_pred (B, 2), -1 where there is none (the row is not constant).

    ct, cp: y_true and y_pred centred on the sample means; sxy, sxx, syy are the Spearman sums of
    the centred average ranks (see regression._TieBlocks). The item loops have no branch on the copies (a
    zero adds nothing): about 2x faster than skipping the items a resample left out."""
    b, m = index.shape
    n = ct.shape[0]
    sums = np.zeros((b, 10))
    modes = np.full((b, 2), -1, np.int64)
    counts = np.zeros(n, np.int32)
    counts_t, counts_p = np.zeros(n_blocks_t), np.zeros(n_blocks_p)
    rank_t, rank_p = np.zeros(n_blocks_t), np.zeros(n_blocks_p)
    for r in range(b):
        counts[:] = 0
        counts_t[:] = 0.0
        counts_p[:] = 0.0
        for j in range(m):
            counts[index[r, j]] += 1
        s_t = s_p = s_tt = s_pp = s_tp = sae = sse = 0.0
        for i in range(n):  # the sums weighted by the copies, and the copies of each tie block
            c = float(counts[i])
            ct_c, cp_c, ae_c = c * ct[i], c * cp[i], c * abs_error[i]
            s_t += ct_c
            s_p += cp_c
            s_tt += ct_c * ct[i]
            s_pp += cp_c * cp[i]
            s_tp += ct_c * cp[i]
            sae += ae_c
            sse += ae_c * abs_error[i]
            counts_t[block_t[i]] += c
            counts_p[block_p[i]] += c
        sxx, modes[r, 0] = _block_ranks(counts_t, m, rank_t)
        syy, modes[r, 1] = _block_ranks(counts_p, m, rank_p)
        sxy = 0.0
        for i in range(n):
            sxy += counts[i] * rank_t[block_t[i]] * rank_p[block_p[i]]
        sums[r, 0], sums[r, 1], sums[r, 2], sums[r, 3], sums[r, 4] = s_t, s_p, s_tt, s_pp, s_tp
        sums[r, 5], sums[r, 6], sums[r, 7], sums[r, 8], sums[r, 9] = sae, sse, sxy, sxx, syy
    return sums, modes
