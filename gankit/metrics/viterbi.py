"""`sparse_viterbi`: librosa's Viterbi decoding, exactly, at the cost of the transition matrix's non-zero entries.

pYIN (`librosa.pyin`) decodes ~860 pitch/voicing states with a dense Viterbi, O(frames × states²): 80 % of F0
tracking time here. Its transition matrix is banded (a pitch moves a few semitones per frame at most), ~10 % non-zero.
`sparse_viterbi` takes the same inputs and gives the same states: librosa scores a zero transition as log(tiny), so
besides the non-zero predecessors of each state it keeps one more candidate — the best previous state overall plus
log(tiny) — which is the best of all zero-transition predecessors whenever it can win (a non-zero entry always scores
above log(tiny)). Sums are the same float64 additions in the same order, ties go to the lowest index as in
`np.argmax`, so the decoded path is identical (tests compare on real speech and noise).
`faster_pyin()` routes `librosa.pyin`'s decoding through it for the duration of a block.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numba
import numpy as np

# Below this share of non-zero transitions the sparse pass is used; a dense matrix goes to librosa's own.
SPARSE_SHARE = 0.5


@numba.njit(cache=True, nogil=True)
def _decode(log_prob: np.ndarray, indptr: np.ndarray, indices: np.ndarray, log_values: np.ndarray,
            log_zero: float, log_p_init: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    n_steps, n_states = log_prob.shape
    ptr = np.zeros((n_steps, n_states), dtype=np.int64)
    previous = log_prob[0] + log_p_init
    current = np.empty(n_states)
    for t in range(1, n_steps):
        best_any = 0
        for i in range(1, n_states):
            if previous[i] > previous[best_any]:
                best_any = i
        zero_candidate = previous[best_any] + log_zero
        for j in range(n_states):
            best = -np.inf
            arg = -1
            for k in range(indptr[j], indptr[j + 1]):  # rows in increasing order: first maximum kept
                value = previous[indices[k]] + log_values[k]
                if value > best:
                    best = value
                    arg = indices[k]
            if zero_candidate > best or (zero_candidate == best and best_any < arg):
                best = zero_candidate
                arg = best_any
            ptr[t, j] = arg
            current[j] = log_prob[t, j] + best
        previous, current = current, previous
    states = np.zeros(n_steps, dtype=np.int64)
    last = 0
    for i in range(1, n_states):
        if previous[i] > previous[last]:
            last = i
    states[n_steps - 1] = last
    for t in range(n_steps - 2, -1, -1):
        states[t] = ptr[t + 1, states[t + 1]]
    return states


def sparse_viterbi(prob: np.ndarray, transition: np.ndarray, *, p_init: np.ndarray | None = None) -> np.ndarray:
    """The states of `librosa.sequence.viterbi(prob, transition, p_init=p_init)` for prob [..., states, frames]
    (uint16, as librosa returns them), computed over the non-zero transitions only. Checks as librosa's."""
    import librosa

    n_states = prob.shape[-2]
    if transition.shape != (n_states, n_states):
        raise librosa.ParameterError(f"transition.shape={transition.shape}, must be {(n_states, n_states)}")
    if np.any(transition < 0) or not np.allclose(transition.sum(axis=1), 1):
        raise librosa.ParameterError("Invalid transition matrix: must be non-negative and sum to 1 on each row.")
    if np.any(prob < 0) or np.any(prob > 1):
        raise librosa.ParameterError("Invalid probability values: must be between 0 and 1.")
    if p_init is None:
        p_init = np.full(n_states, 1.0 / n_states)
    epsilon = librosa.util.tiny(prob)
    log_prob = np.log(prob + epsilon)
    log_p_init = np.log(p_init + epsilon)
    columns = transition.T  # row j: the transitions into state j
    rows, cols = np.nonzero(columns)  # row-major: for each target j, predecessors in increasing order
    indptr = np.zeros(n_states + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_states), out=indptr[1:])
    log_values = np.log(columns[rows, cols] + epsilon)
    log_zero = float(np.log(np.zeros(1, dtype=transition.dtype) + epsilon)[0])
    flat = log_prob.reshape(-1, *log_prob.shape[-2:])
    states = np.stack([
        _decode(np.ascontiguousarray(lp.T, dtype=np.float64), indptr, cols.astype(np.int64),
                np.ascontiguousarray(log_values, dtype=np.float64), log_zero,
                np.ascontiguousarray(log_p_init, dtype=np.float64))
        for lp in flat
    ])
    return states.reshape(*log_prob.shape[:-2], log_prob.shape[-1]).astype(np.uint16)


_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def faster_pyin() -> Iterator[None]:
    """Inside the block, the Viterbi pass of `librosa.pyin` (and any librosa caller) uses `sparse_viterbi` when the
    transition matrix is sparse and no log-probability is asked for; anything else goes to librosa's own. One
    block at a time per process (a lock), restored on exit."""
    import librosa.sequence

    with _PATCH_LOCK:
        original = librosa.sequence.viterbi

        def viterbi(prob: np.ndarray, transition: np.ndarray, *, p_init: np.ndarray | None = None,
                    return_logp: bool = False) -> Any:
            sparse = np.count_nonzero(transition) <= SPARSE_SHARE * transition.size
            if return_logp or not sparse:
                return original(prob, transition, p_init=p_init, return_logp=return_logp)
            return sparse_viterbi(prob, transition, p_init=p_init)

        librosa.sequence.viterbi = viterbi
        try:
            yield
        finally:
            librosa.sequence.viterbi = original
