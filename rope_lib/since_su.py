r"""The methods after Su's series, as functions of positions and frequencies.

Notation (the companion's): theta_i = b^(-2i/d), i = 0..d/2-1, base b, rotary dim d, training length L, scale s,
wavelength (period) lambda_i = 2 pi / theta_i. Positions are 0-based. Angles are float64 (:func:`rope_lib.angles`);
rotations use the half-split layout unless ``layout`` says otherwise (:func:`rope_lib.apply_rope`).

Each method is a small function of plain arguments; none reads a config. By family:

==============================  =====================================================================================
frequencies (d/2,) float64      :func:`p_rope_frequencies` (p-RoPE), :func:`hope_frequencies` (HoPE),
                                :func:`resonance_frequencies` (Resonance RoPE). A pair with theta = 0 is not rotated:
                                cos 0 = 1, sin 0 = 0, so ``apply_rope`` passes it through unchanged (NoPE on it).
                                As rope types of :func:`rope_lib.frequencies` ("p_rope", "hope", "resonance"):
                                :func:`p_rope_method`, :func:`hope_method`, :func:`resonance_method`
position ids                    :func:`pose_position_ids` (PoSE's skipped ids for training in a short window)
logit multipliers (float64)     :func:`ssmax_scale` (SSMax, s log n), :func:`llama4_attention_temperature`
layer pattern                   :func:`nope_layers` (Llama 4's interleaved NoPE layers)
attention                       :func:`vo_rope_attention` with :func:`rotate_values` / :func:`unrotate_output`
                                (VO-RoPE)
relative positions (seq, seq)   :func:`dual_chunk_relative_position` (Dual Chunk Attention)
==============================  =====================================================================================

Every bad argument raises ``ValueError`` naming the argument and the values allowed (through
:mod:`rope_lib._checks` where a shared wording exists).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import _checks
from . import scaling as _scaling
from ._checks import compute_dtype
from .rope import Layout, apply_rope, inv_freq
from .scaling import Frequencies

__all__ = [
    "dual_chunk_position_ids",
    "dual_chunk_relative_position",
    "hope_frequencies",
    "hope_method",
    "llama4_attention_temperature",
    "nope_layers",
    "p_rope_frequencies",
    "p_rope_method",
    "pose_position_ids",
    "resonance_frequencies",
    "resonance_method",
    "rotate_values",
    "ssmax_scale",
    "unrotate_output",
    "vo_rope_attention",
]

# p * d/2 computed in floating point can land a hair below an integer (0.58 * 100 / 2 = 28.999999999999996);
# the intended count is the integer, so the floor gets this much slack. It is far below the gap 1/(d/2) between
# neighbouring fractions of any realistic head dimension, so no honest p is moved by it.
_FLOOR_SLACK = 1e-9


# ----------------------------------------------------------------------------------------------------------------
# argument checks (the shared wording of rope_lib._checks, plus the few bounds it has no helper for)


def _even_dim(name: str, value: Any) -> int:
    value = _checks.positive_int(name, value)
    if value % 2:
        raise ValueError(f"{name} must be a positive even integer, got {value!r}")
    return value


def _base(value: Any) -> float:
    return _checks.finite_number("base", value, above=1.0)


def _positions(name: str, value: Any) -> torch.Tensor:
    """A tensor of finite positions >= 0 (integers or floats), as float64; a ValueError naming ``name`` else."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a tensor or number of finite positions >= 0, got {value!r}")
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a tensor or number of finite positions >= 0, got {value!r}") from None
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must hold real positions >= 0, got dtype {t.dtype}")
    t = t.to(torch.float64)
    if t.numel() and not (torch.isfinite(t).all() and (t >= 0).all()):
        raise ValueError(f"{name} must be finite positions >= 0 (0-based), got {value!r}")
    return t


# ----------------------------------------------------------------------------------------------------------------
# frequencies


def p_rope_frequencies(head_dim: int, base: float = 10000.0, p: float = 0.75) -> torch.Tensor:
    """p-RoPE: keep the fraction ``p`` of the pairs (the highest frequencies), leave the rest unrotated.

    Source: Barbero et al., "Round and Round We Go! What makes Rotary Positional Encodings useful?", ICLR 2025,
    arXiv 2410.06205 (Table 2: Gemma 2B trained with RoPE, 0.25-RoPE, 0.75-RoPE; the paper's JAX listing
    ``apply_p_rope`` rotates ``rope_angles = int(rope_percentage * head_dim // 2)`` pairs and gives the remaining
    ``head_dim // 2 - rope_angles`` an infinite wavelength, i.e. theta = 0).

    ``p`` is the fraction KEPT: p = 1 is RoPE, p = 0 is NoPE. The kept pairs are i = 0..r-1 with their ordinary
    theta_i = b^(-2i/d) (the exponent keeps the full d, as in the listing: the kept pairs are not re-spread over
    the band), and the lowest-frequency pairs i >= r get theta = 0. Why: the paper finds Gemma using the lowest
    frequencies as semantic channels, which rotation makes non-robust at long range; zeroing them frees those
    channels from position.

    Rounding of the pair count: r = floor(p * d / 2), as the listing's integer division; we add a 1e-9 slack
    before the floor so that a float product that should be an integer is not rounded down (p = 0.58, d = 100:
    the listing's float arithmetic gives 28, the intended floor(29.0) is 29).

    Args:
        head_dim: rotary dim d (even, >= 2).
        base: b > 1.
        p: fraction of pairs rotated, 0 <= p <= 1.

    Returns:
        float64 (d/2,) per-pair frequencies, zeros for the unrotated pairs.
    """
    d = _even_dim("head_dim", head_dim)
    b = _base(base)
    p = _checks.finite_number("p", p)
    if not 0 <= p <= 1:
        raise ValueError(f"p must be a finite number in [0, 1] (the fraction of pairs rotated), got {p!r}")
    kept = math.floor(p * d / 2 + _FLOOR_SLACK)
    theta = inv_freq(d, b)
    theta[kept:] = 0.0
    return theta


def hope_frequencies(head_dim: int, base: float, train_length: int) -> torch.Tensor:
    """HoPE (High-frequency rotary Position Encoding): only pairs that complete a full period within L rotate.

    Source: Chen, Lv, Luan, Wang, Liu, "HoPE: A Novel Positional Encoding Without Long-Term Decay for Enhanced
    Context Awareness and Extrapolation", ACL 2025, arXiv 2410.21216 (abstract: "HoPE replaces the specific
    components in RoPE with position-independent ones, retaining only high-frequency signals"): the rotation is
    diag(R(m theta_0), ..., R(m theta_{r-1}), I, ..., I), the first r (fastest) pairs rotated, the rest fixed.

    Convention for the cut r (ours: the passages we could check give that structure, not the threshold's wording):
    pair i is replaced by a position-independent one (theta = 0) when its period exceeds the training length,
    lambda_i = 2 pi / theta_i > L; it is kept when lambda_i <= L. Why: a pair that
    never completes a period within L is monotone over every distance seen in training, which is what lets the
    model learn the long-term-decay / U-shaped "activated" components the paper blames, and it meets phases never
    seen in training as soon as the context passes L. The kept pairs are a prefix (theta_i decreases with i).
    We do not additionally remove any of the highest frequencies.

    Returns:
        float64 (d/2,): theta_i where 2 pi / theta_i <= L, 0 elsewhere.
    """
    d = _even_dim("head_dim", head_dim)
    b = _base(base)
    L = _checks.positive_int("train_length", train_length)
    theta = inv_freq(d, b)
    return torch.where(2 * math.pi / theta <= L, theta, torch.zeros_like(theta))


def resonance_frequencies(head_dim: int, base: float = 10000.0, train_length: int | None = None) -> torch.Tensor:
    """Resonance RoPE: round each wavelength to the nearest integer, theta~_i = 2 pi / round(2 pi / theta_i).

    Source: Wang, Kobyzev, Lu, Rezagholizadeh, Liu, "Resonance RoPE: Improving Context Length Generalization of
    Large Language Models", Findings of ACL 2024, arXiv 2403.00071 (Algorithm 1: lambda_i = 2 pi / theta_i,
    lambda~_i = round(lambda_i), theta~_i = 2 pi / lambda~_i for every pair; the public ``ResonanceRotaryEmbedding``
    does the same, ``r_wavelengths = torch.round(2 * math.pi / inv_freq)``, with no condition on the length).

    Why: a pair whose wavelength is an integer repeats exactly the same angles every lambda~_i tokens, so at
    positions past L it only meets the (integer-position) phases it already saw in training; with a non-integer
    wavelength each new period lands on new phases (the paper's feature gap for OOD positions). That argument
    covers the "pre-critical" pairs, those that complete a period inside the training length (lambda_i <= L);
    the post-critical pairs never complete one, and rounding them changes nothing the argument relies on.

    Convention: ``train_length=None`` (default) rounds every pair, exactly as Algorithm 1 and the authors' code;
    with ``train_length=L`` only the pre-critical pairs (lambda_i <= L) are rounded and the others keep theta_i
    bit for bit (the restriction the argument justifies; for the post-critical pairs the two differ by less than
    one part in lambda_i).

    Returns:
        float64 (d/2,) per-pair frequencies.
    """
    d = _even_dim("head_dim", head_dim)
    b = _base(base)
    L = None if train_length is None else _checks.positive_int("train_length", train_length)
    theta = inv_freq(d, b)
    wavelength = 2 * math.pi / theta
    # theta_i <= 1, so lambda_i >= 2 pi > 6: rounding never reaches 0
    rounded = 2 * math.pi / torch.round(wavelength)
    if L is None:
        return rounded
    return torch.where(wavelength <= L, rounded, theta)


# ----------------------------------------------------------------------------------------------------------------
# the frequency methods as rope types of rope_lib.frequencies
#
# rope_lib.rope_parameters calls a rope type's method as method(rotary_dim, base, ...) -> (inv_freq, attention
# factor), the shape of rope_lib.scaling's methods, and reads the config keys off the signature (an argument without
# a default is a required key; ``original_length`` is read from original_max_position_embeddings). Each adapter first
# checks its arguments with rope_lib.scaling's checks, which raise ArgumentError naming the argument, so that the
# config reader re-raises a refusal under the config key's name with the allowed values; the functions above raise
# plain ValueErrors, which it could not attribute to a key. The computation itself is the function above, once.


def p_rope_method(rotary_dim: int, base: float, p: float) -> Frequencies:
    """rope_type "p_rope": :func:`p_rope_frequencies` over the rotary dim d, attention factor 1.

    ``p`` (the fraction of pairs rotated, 0 <= p <= 1) has no default here, unlike :func:`p_rope_frequencies`: the
    paper trains both 0.25 and 0.75, so a config naming p-RoPE must say which.

    Returns:
        (float64 (d/2,) frequencies, zeros for the unrotated pairs; 1.0).
    """
    _scaling._rotary_dim("rotary_dim", rotary_dim)
    _scaling._base(base)
    _scaling._number("p", p, low=0.0, high=1.0)
    return p_rope_frequencies(rotary_dim, base, p), 1.0


def hope_method(rotary_dim: int, base: float, original_length: int) -> Frequencies:
    """rope_type "hope": :func:`hope_frequencies` with the training length L = ``original_length``, attention
    factor 1 (HoPE needs L, so the key is required; a config object or ``rope_lib.hf.apply`` fills it in).

    Returns:
        (float64 (d/2,): theta_i where 2 pi / theta_i <= L, 0 elsewhere; 1.0).
    """
    _scaling._rotary_dim("rotary_dim", rotary_dim)
    _scaling._base(base)
    _scaling._integer("original_length", original_length, low=1)
    return hope_frequencies(rotary_dim, base, original_length), 1.0


def resonance_method(rotary_dim: int, base: float, original_length: int | None = None) -> Frequencies:
    """rope_type "resonance": :func:`resonance_frequencies`, attention factor 1.

    ``original_length=None`` (the key absent) rounds every wavelength, as the paper's Algorithm 1; L rounds only
    the pairs with period <= L. The key is optional and never filled in from a model's length: a config object or
    ``rope_lib.hf.apply`` giving L would silently turn the published method into the restricted one.

    Returns:
        (float64 (d/2,) per-pair frequencies; 1.0).
    """
    _scaling._rotary_dim("rotary_dim", rotary_dim)
    _scaling._base(base)
    if original_length is not None:
        _scaling._integer("original_length", original_length, low=1)
    return resonance_frequencies(rotary_dim, base, original_length), 1.0


# ----------------------------------------------------------------------------------------------------------------
# PoSE position ids


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """One integer uniform on {low, ..., high} (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def pose_position_ids(
    window: int, target_length: int, n_chunks: int = 2, generator: torch.Generator | None = None
) -> torch.Tensor:
    """PoSE: position ids for one training example of ``window`` tokens that skip so as to span ``target_length``.

    Source: Zhu et al., "PoSE: Efficient Context Window Extension of LLMs via Positional Skip-wise Training",
    ICLR 2024, arXiv 2309.10400 (Sec. 3.2: the window is cut into chunks c_0..c_{N-1} of lengths l_i, chunk i gets
    the ids {st_i + u_i, ..., st_i + u_i + l_i - 1} with st_i = l_0 + ... + l_{i-1} and skipping biases
    u_i ~ U({u_{i-1}, ..., L_t - L_c}), which keeps the chunks in order without overlap; chunk lengths and biases
    are redrawn for every example). The authors' ``train_preprocess_function_pose`` (github.com/dwzhu-pku/PoSE,
    src/train_pose.py) uses N = 2 and fixes the conventions below.

    Conventions (those of the authors' code, which the paper's experiments ran):

    * u_0 = 0: the first chunk starts at id 0 (the code's ``lt = 0``, "makes the coverage possibility more uniform
      for large relative positions"); then u_i uniform on {u_{i-1}, ..., target_length - window}, both ends
      included (Python's ``random.randint``).
    * chunk lengths: l_0 uniform on {1, ..., floor((window + 1)/2)} (the code's ``randint(1, (len_chunk+1)//2)``,
      so the first chunk is at most half the window, rounded up); for N > 2 (our generalisation) the remaining
      window - l_0 tokens are cut into N - 1 chunks of >= 1 token at distinct cut points drawn uniformly, and l_0
      is additionally capped at window - (N - 1) so that they fit. N = 1 gives 0..window-1.

    Properties: ids are strictly increasing (u_i >= u_{i-1} and each chunk starts after the previous one ends) and
    the last id is window - 1 + u_{N-1} <= target_length - 1. With ``target_length == window`` every bias is 0 and
    the ids are 0..window-1.

    Relative distances seen (N = 2, bias u of the second chunk): inside a chunk, 0..l-1 (< window) every time;
    between key j in chunk 0 and query i in chunk 1, (i - j) + u with i - j in 1..window-1. A distance r >= window
    occurs in an example iff u lands in [r - window + 1, r - 1], so over draws every r in 0..target_length-1 is
    covered; its chance per example is about (window - 1)/(target_length - window + 1) in the middle and falls off
    linearly near r = 1 and r = target_length - 1 (the largest distance needs u at its maximum and the pair
    (window - 1, 0): probability 1/(target_length - window + 1) per example).

    Args:
        window: tokens actually trained on, L_c (>= n_chunks).
        target_length: context to simulate, L_t (>= window).
        n_chunks: N >= 1.
        generator: a ``torch.Generator`` for reproducible draws (None: torch's global generator).

    Returns:
        int64 (window,) position ids.
    """
    w = _checks.positive_int("window", window)
    n = _checks.positive_int("n_chunks", n_chunks)
    T = _checks.positive_int("target_length", target_length)
    if w < n:
        raise ValueError(f"window must be >= n_chunks = {n} (each chunk holds at least one token), got {w!r}")
    if T < w:
        raise ValueError(f"target_length must be >= window = {w}, got {T!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    ids = torch.arange(w, dtype=torch.long)
    if n == 1:
        return ids
    first = _randint(1, min((w + 1) // 2, w - (n - 1)), generator)
    if n == 2:
        starts = [0, first]
    else:
        # n-2 distinct cut points in first+1..w-1 split the rest into n-1 non-empty chunks
        cuts = torch.randperm(w - first - 1, generator=generator)[: n - 2] + first + 1
        starts = [0, first, *sorted(int(c) for c in cuts)]
    bias = 0  # u_0 = 0: the first chunk keeps ids 0..l_0-1
    for start in starts[1:]:
        previous, bias = bias, _randint(bias, T - w, generator)  # u_i uniform on {u_{i-1}, ..., T - w}
        ids[start:] += bias - previous  # this chunk and every later one now carry u_i
    return ids


# ----------------------------------------------------------------------------------------------------------------
# logit multipliers


def ssmax_scale(positions: Any, s: float) -> torch.Tensor:
    """SSMax (Scalable-Softmax): the multiplier s log n on a query's logits, n = number of keys it attends to.

    Source: Nakanishi, "Scalable-Softmax Is Superior for Attention", arXiv 2501.19399 (the definition:
    SSMax(z)_i = n^{s z_i} / sum_j n^{s z_j} = softmax((s log n) z)_i, n the size of the input vector, s a
    learnable scalar per layer and head; natural log). Why: with n keys the softmax's maximum weight shrinks like
    1/n for fixed logits ("attention fading"); a logit scale growing like log n keeps the winner's weight from
    fading. Su's log n scaling (:func:`rope_lib.log_n_scale`) is the same idea in another parametrisation.

    Causal convention: a query at 0-based position m sees n = m + 1 keys (itself included). At m = 0 the
    multiplier is s log 1 = 0: one key gets weight 1 whatever its logit.

    Args:
        positions: 0-based query positions, any shape (tensor, number or nested sequence), finite and >= 0.
        s: the scale s (finite).

    Returns:
        float64 tensor of the shape of ``positions``.
    """
    pos = _positions("positions", positions)
    s = _checks.finite_number("s", s)
    return s * torch.log1p(pos)


def llama4_attention_temperature(positions: Any, floor_scale: float = 8192, attn_scale: float = 0.1) -> torch.Tensor:
    """Llama 4's attention temperature: log(floor((m + 1) / floor_scale) + 1) * attn_scale + 1 at 0-based position m.

    Source: transformers 5.23.0, ``models/llama4/modeling_llama4.py``, ``Llama4TextAttention.forward``:
    ``torch.log1p(torch.floor((positions.float() + 1.0) / self.floor_scale)) * self.attn_scale + 1.0`` with
    ``positions = arange(seq) + past_seen_tokens`` (0-based), multiplied into the *queries* of the NoPE layers only
    (``if self.attn_temperature_tuning and not self.use_rope``); defaults ``floor_scale=8192``, ``attn_scale=0.1``
    in ``Llama4TextConfig`` (the code's comment points at SSMax, arXiv 2501.19399). Why: a step-wise log n scale,
    constant over blocks of ``floor_scale`` tokens, sharpens the NoPE layers' attention at long context without
    touching short contexts: it is exactly 1 for m + 1 < floor_scale, i.e. m < floor_scale - 1.

    Args:
        positions: 0-based positions, any shape, finite and >= 0.
        floor_scale: block length in tokens (> 0).
        attn_scale: strength (finite).

    Returns:
        float64 tensor of the shape of ``positions`` (the multiplier of the query at each position).
    """
    pos = _positions("positions", positions)
    f = _checks.finite_number("floor_scale", floor_scale, above=0.0)
    a = _checks.finite_number("attn_scale", attn_scale)
    return torch.log1p(torch.floor((pos + 1.0) / f)) * a + 1.0


def nope_layers(n_layers: int, every: int = 4) -> tuple[int, ...]:
    """The 0-based indices of the layers that use no position encoding in Llama 4's interleaved (iRoPE) pattern.

    Source: transformers 5.23.0, ``models/llama4/configuration_llama4.py``: by default ``no_rope_layers[i] =
    int((i + 1) % no_rope_layer_interval != 0)`` with ``no_rope_layer_interval = 4``, where (despite the name) a 1
    means "uses RoPE" and a 0 marks a NoPE layer (``Llama4TextAttention``: ``self.use_rope =
    config.no_rope_layers[layer_idx]``). So every ``every``-th layer counting from 1 is NoPE: 0-based layers
    every-1, 2*every-1, ..., i.e. 3, 7, 11, ... for every = 4. Why interleave: the RoPE layers (chunked attention in
    Llama 4) model local order, the NoPE layers attend over the whole context with no position to extrapolate.

    Returns:
        tuple of ints in increasing order (empty when every > n_layers).
    """
    n = _checks.positive_int("n_layers", n_layers)
    k = _checks.positive_int("every", every)
    return tuple(i for i in range(n) if (i + 1) % k == 0)


# ----------------------------------------------------------------------------------------------------------------
# VO-RoPE


def rotate_values(
    v: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, *, layout: Layout = "half_split"
) -> torch.Tensor:
    """VO-RoPE's first half: rotate each value by its key's position, R_j v_j (what :func:`rope_lib.apply_rope`
    does to a key). v (..., seq, head_dim), positions (seq,) or broadcastable; same dtype and shape as v."""
    return apply_rope(v, positions, inv_freq, layout=layout)


def unrotate_output(
    o: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, *, layout: Layout = "half_split"
) -> torch.Tensor:
    """VO-RoPE's second half: rotate each attention output back by its query's position, R_i^T o_i = R_{-i} o_i.

    A rotation by the negative angle is the inverse (R_{-i} R_i = I), so this is :func:`rope_lib.apply_rope` at the
    negated positions. o (..., seq, head_dim), positions (seq,) or broadcastable; same dtype and shape as o.
    """
    positions = torch.as_tensor(positions)
    if not (positions.is_floating_point() or positions.dtype.is_signed):  # -uint would wrap around
        positions = positions.to(torch.int64)
    return apply_rope(o, -positions, inv_freq, layout=layout)


def vo_rope_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    inv_freq: torch.Tensor,
    *,
    positions: torch.Tensor | None = None,
    causal: bool = True,
    scale: float | None = None,
    rotate_qk: bool = True,
    layout: Layout = "half_split",
) -> torch.Tensor:
    r"""Attention with RoPE on the values and the inverse rotation on the output (VO-RoPE), O(seq^2) reference.

    Source: Su Jianlin, "VO-RoPE" (kexue.fm/archives/10862, 2025-04): rotate v_j by its position j, attend, rotate
    the output at query i by -i:

        o_i = R_i^T sum_j p_ij R_j v_j = sum_j p_ij R_{j-i} v_j        (R_m: rotation by m * theta, R_a^T R_b = R_{b-a})

    so the output, like QK-RoPE's scores, depends on relative positions only: shifting every position by the same
    constant leaves it unchanged. ``rotate_qk=True`` also applies ordinary RoPE to q and k (Su's "QKVO" variant,
    scores q_i^T R_{j-i} k_j); ``False`` is "VO only" (the scores carry no position). Su's ~1B LLaMA-like runs in the
    post: QK-RoPE loss 2.712, QKVO 2.719, VO only 2.770, NoPE 2.795.

    Args:
        q, k: (..., seq, head_dim), one floating dtype; v: (..., seq, head_dim_v) with head_dim_v >= rotary dim.
        inv_freq: (rotary_dim/2,) frequencies (rotary_dim <= head_dim and <= head_dim_v).
        positions: (seq,) positions (int or float) of the tokens, default 0..seq-1; q and k share them.
        causal: mask keys after the query (by index).
        scale: logit scale, default 1/sqrt(head_dim).
        rotate_qk: also rotate q and k (QKVO) or not (VO only).
        layout: "half_split" (default) or "interleaved".

    Returns:
        (..., seq, head_dim_v) in q's dtype; the scores, softmax and products run in >= float32 (float64 for
        float64 input) and are rounded once.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() < 2:
            what = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a floating-point tensor of shape (..., seq, head_dim), got {what}")
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape, got q {tuple(q.shape)}, k {tuple(k.shape)}")
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(f"v must match k's shape except the last dim, got v {tuple(v.shape)}, k {tuple(k.shape)}")
    if not isinstance(causal, bool) or not isinstance(rotate_qk, bool):
        raise ValueError(f"causal and rotate_qk must be True or False, got causal={causal!r}, rotate_qk={rotate_qk!r}")
    n = q.shape[-2]
    if positions is None:
        positions = torch.arange(n, device=q.device)
    positions = torch.as_tensor(positions, device=q.device)
    if positions.shape != (n,):
        raise ValueError(f"positions must have shape (seq,) = ({n},), got {tuple(positions.shape)}")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scale = _checks.finite_number("scale", scale, above=0.0)

    dtype = compute_dtype(q.dtype)
    qc, kc, vc = q.to(dtype), k.to(dtype), v.to(dtype)
    if rotate_qk:
        qc, kc = apply_rope(qc, positions, inv_freq, layout=layout), apply_rope(kc, positions, inv_freq, layout=layout)
    vc = rotate_values(vc, positions, inv_freq, layout=layout)
    scores = (qc @ kc.transpose(-1, -2)) * scale
    if causal:
        idx = torch.arange(n, device=q.device)
        scores = scores.masked_fill(idx[None, :] > idx[:, None], float("-inf"))
    o = torch.softmax(scores, dim=-1) @ vc
    return unrotate_output(o, positions, inv_freq, layout=layout).to(q.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Dual Chunk Attention


def _dual_chunk_sizes(seq_len: int, chunk_size: int, local_window: int) -> tuple[int, int, int]:
    """(n, chunk_size, chunk_len = chunk_size - local_window), the arguments checked."""
    n = _checks.positive_int("seq_len", seq_len)
    s = _checks.positive_int("chunk_size", chunk_size)
    w = _checks.nonnegative_int("local_window", local_window)
    if w >= s:
        raise ValueError(f"local_window must be in [0, chunk_size) = [0, {s}), got {w!r}")
    return n, s, s - w


def dual_chunk_relative_position(seq_len: int, chunk_size: int, local_window: int = 0) -> torch.Tensor:
    r"""The relative position Dual Chunk Attention (DCA) scores query i and key j at, as a (seq, seq) matrix.

    Sources: An et al., "Training-Free Long-Context Scaling of Large Language Models" (ChunkLlama), ICML 2024,
    arXiv 2402.17463 (Sec. 3: intra-chunk, successive-chunk and inter-chunk attention, each a RoPE score with
    remapped query and key position indices); Qwen2.5-1M, arXiv 2501.15383 (DCA for inference past the training
    length, with ``dual_chunk_attention_config = {chunk_size, local_size}``). The exact indices below are those
    of the reference implementations, HKUNLP/ChunkLlama ``chunkllama_attn_replace.py`` and vLLM's
    ``DualChunkRotaryEmbedding`` (which serves Qwen2.5-1M): with ``chunk_len = chunk_size - local_window``,

    * key index:  P_k[j] = j mod chunk_len;
    * intra-chunk (same chunk):           P_q = i mod chunk_len              -> relative i - j, the plain one;
    * successive-chunk (key chunk = query chunk - 1):
      P_q = min(i mod chunk_len + chunk_len, chunk_size)                     -> i - j while i mod chunk_len <= w,
      then clipped: the first queries of a chunk still see the end of the previous chunk at the true distance;
    * inter-chunk (key chunk <= query chunk - 2):
      P_q = min(2 chunk_len - 1, chunk_size), one index for every query      -> P_q - (j mod chunk_len).

    So every relative position is at most ``chunk_size`` (attained by the key at the start of an earlier chunk):
    choose chunk_size below the pretraining length and no score uses a relative position the model never saw,
    however long the sequence (ChunkLlama's default: chunk_size = 3/4 of it, local_window = 1/16). Like
    :func:`rope_lib.rerope_relative_position` this is the matrix a reference attention needs: its score for (i, j)
    is the RoPE score of q_i and k_j at relative position rel[i, j] (q^T R_{-rel} k).

    Entries with j > i (future keys, masked in causal attention) hold i - j, what the intra-chunk formula gives
    inside a chunk; they are negative, so ``rel >= 0`` marks exactly the keys a causal query sees.

    Args:
        seq_len: sequence length n.
        chunk_size: the clip value and chunk_len + local_window (> local_window).
        local_window: w >= 0; 0 gives chunks of ``chunk_size`` tokens with no locality kept across a boundary
            beyond the first query.

    Returns:
        int64 (seq_len, seq_len).
    """
    n, s, chunk_len = _dual_chunk_sizes(seq_len, chunk_size, local_window)
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    qi, kj = i % chunk_len, j % chunk_len
    gap = i // chunk_len - j // chunk_len  # how many chunks the key lies behind the query
    intra = qi - kj
    successive = torch.clamp(qi + chunk_len, max=s) - kj
    inter = min(2 * chunk_len - 1, s) - kj
    rel = torch.where(gap >= 2, inter, torch.where(gap == 1, successive, intra))
    return torch.where(j > i, i - j, rel).to(torch.int64)


def dual_chunk_position_ids(seq_len: int, chunk_size: int, local_window: int = 0) -> dict[str, torch.Tensor]:
    """The position ids Dual Chunk Attention rotates by, per token (what an attention kernel needs, where
    :func:`dual_chunk_relative_position` gives the resulting (seq, seq) matrix; the same sources and conventions).

    Returns int64 (seq_len,) tensors: ``"key"`` (j mod chunk_len), the query's id for a key in its own chunk
    (``"intra"``), in the previous chunk (``"successive"``) and further back (``"inter"``), and ``"chunk"`` (i //
    chunk_len, which of the three a (query, key) pair uses: the difference of their chunks, 0, 1 or >= 2).
    """
    n, s, chunk_len = _dual_chunk_sizes(seq_len, chunk_size, local_window)
    i = torch.arange(n)
    within = i % chunk_len
    return {
        "key": within,
        "intra": within,
        "successive": torch.clamp(within + chunk_len, max=s),
        "inter": torch.full((n,), min(2 * chunk_len - 1, s), dtype=torch.int64),
        "chunk": i // chunk_len,
    }
