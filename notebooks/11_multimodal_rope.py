# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11 · Positions for text and images: RoPE-2D, RoPE-Tie and Qwen2-VL's M-RoPE
#
# **Claim reproduced.** Give a text token at 1-D position $n$ the 2-D position $(n, n)$ and RoPE-2D reduces to
# RoPE-1D on text, so a text model's RoPE carries over; put an image of $h \times w$ patches after the text token
# at $(L, L)$ with patch $(r, c)$ at $(L + rs, L + ct)$, $s = w + 1$, $t = h + 1$, and the next text token at
# $L + (w+1)(h+1)$ (*RoPE-Tie*). Then the attention score between two patches depends only on their row and
# column offsets, and the text after the image is back on the diagonal, as if the image were $(w+1)(h+1) - 1$
# text tokens. A non-integer variant, $s = (wh+1)/(h+1)$, $t = (wh+1)/(w+1)$, makes the image count as exactly
# $wh$ tokens. Qwen2-VL's *M-RoPE* gives every token three ids (temporal, height, width) and rotates three
# contiguous sections of the pairs by them.
#
# Sources: Su Jianlin, "Transformer升级之路：17、多模态位置编码的简单思考" (<https://kexue.fm/archives/10040>,
# RoPE-Tie) and "Transformer升级之路：4、二维位置的旋转式位置编码" (<https://kexue.fm/archives/8397>, RoPE-2D);
# Wang et al., *Qwen2-VL*, arXiv:2409.12191 (M-RoPE). Reference implementation for M-RoPE: Hugging Face
# transformers' Qwen2-VL (`get_rope_index`, `Qwen2VLRotaryEmbedding`; 5.23.0, pinned in constraints.txt; checked
# below).
#
# Notation: $\theta_i = b^{-2i/d}$, $i = 0..d/2-1$, base $b$, rotary dim $d$; an image has $h$ rows and $w$
# columns, patch $(r, c)$ with $r = 1..h$, $c = 1..w$. *Remarks marked **(ours)** are this companion's, not the
# sources'.*

# %% tags=["parameters"]
profile: str = "smoke"  # "smoke" (CPU, minutes, what is committed) or "full" (one GPU)
device: str = "auto"  # "auto" -> cuda when present, else cpu; or "cpu", "cuda", "cuda:N"
seed: int = 0  # every random draw in the notebook derives from it

# %%
import itertools
from fractions import Fraction

import matplotlib.pyplot as plt
import sympy as sp
import torch

import rope_lib
from rope_lib import multimodal as mm
from rope_lib.companion.plotting import savefig
from rope_lib.companion.report import setup_notebook

setup_notebook(profile, device, seed)  # analytic notebook: float64 on the CPU whatever the device
torch.set_num_threads(1)  # every tensor here is tiny
gen = torch.Generator().manual_seed(seed)

# %% [markdown]
# ## 1. RoPE-2D, and which RoPE-1D text gets
#
# RoPE-1D rotates pair $i$ by $m\theta_i$. RoPE-2D gives each pair an axis and rotates it by that axis'
# position. One pair first: rotating $u$ by $\alpha$ and $v$ by $\beta$ leaves the dot product
# $u^\top R_{\beta-\alpha} v$, so a score depends on each pair's angle *difference* only. This cell, the next two and
# the RoPE-Tie cell of section 2 (tagged `derivation`) are the central derivation: text gets exactly RoPE-1D, and
# within an image the score depends only on $(\Delta r, \Delta c)$. `tests/test_derivations_can_fail.py` reruns
# them with a constant changed and expects an assert to fire.


# %% tags=["derivation"]
def rot(a):
    return sp.Matrix([[sp.cos(a), -sp.sin(a)], [sp.sin(a), sp.cos(a)]])


al, be = sp.symbols("alpha beta", real=True)
u, v = sp.Matrix(sp.symbols("u0 u1", real=True)), sp.Matrix(sp.symbols("v0 v1", real=True))
assert sp.simplify(((rot(al) * u).T * (rot(be) * v))[0] - (u.T * rot(be - al) * v)[0]) == 0

# %% [markdown]
# The whole score, written out with rotation matrices for $d = 4$ (pair 0 on $x$, pair 1 on $y$), depends on the
# two positions only through their offset:

# %% tags=["derivation"]
b = sp.symbols("b", positive=True)
q4, k4 = sp.symbols("q0:4", real=True), sp.symbols("k0:4", real=True)


def score(q, k, pq, pk, axes, theta):
    """Sum over half-split pairs (i, i + d/2) of (R(pq[axis_i] theta_i) q_i) . (R(pk[axis_i] theta_i) k_i)."""
    h = len(theta)
    pairs = [(sp.Matrix([q[i], q[i + h]]), sp.Matrix([k[i], k[i + h]])) for i in range(h)]
    return sum(((rot(pq[a] * t) * qi).T * (rot(pk[a] * t) * ki))[0] for (qi, ki), a, t in zip(pairs, axes, theta))


x1, y1, x2, y2 = sp.symbols("x1 y1 x2 y2", real=True)
theta4 = [b ** sp.Rational(-2 * i, 4) for i in range(2)]
diff = score(q4, k4, (x1, y1), (x2, y2), (0, 1), theta4) - score(q4, k4, (0, 0), (x2 - x1, y2 - y1), (0, 1), theta4)
assert sp.simplify(sp.expand(sp.expand_trig(diff))) == 0  # relative in 2-D

# %% [markdown]
# Now text at $(n, n)$. Two conventions are in use, and they give text *different* RoPE-1Ds **(ours)**:
#
# * *alternate* (`rope_2d_inv_freq(d)`): pair $i$ keeps the text model's $\theta_i = b^{-2i/d}$ and follows $x$
#   for even $i$, $y$ for odd $i$. At $x = y$ every pair turns at its own $\theta_i$: exactly the text model's
#   RoPE-1D, and each axis still has fast and slow pairs.
# * *halves* (axial RoPE-2D as in ViTs: RoPE-1D of dimension $d/2$ on $x$ for the first half of the pairs, and on
#   $y$ for the second): the frequencies are $b^{-4j/d}$, $j = 0..d/4-1$, each used twice. At $x = y$ that is a
#   RoPE-1D, but with this doubled ladder, not the text model's.
#
# For $d = 8$, with symbolic $q$, $k$, positions $m$, $n$ and base $b$. The two RoPE-2D conventions are built from
# their rules (which axis and which frequency each pair gets) with rotation matrices; RoPE-1D is written
# independently in complex form, pair $i$ contributing $\mathrm{Re}\big[(q_i + \mathrm{i} q_{i+d/2})
# (k_i - \mathrm{i} k_{i+d/2}) e^{\mathrm{i}(m-n)\theta_i}\big]$:


# %% tags=["derivation"]
def rope_1d(q, k, m, n, theta):
    """RoPE-1D score in complex form: sum_i Re[(q_i + i q_{i+h}) conj(k_i + i k_{i+h}) e^{i (m - n) theta_i}]."""
    h, out = len(theta), 0
    for i, t in enumerate(theta):
        z = sp.expand((q[i] + sp.I * q[i + h]) * (k[i] - sp.I * k[i + h]))
        out += sp.re(z) * sp.cos((m - n) * t) - sp.im(z) * sp.sin((m - n) * t)
    return out


def same(lhs, rhs):
    """lhs == rhs as functions: the difference, with every cos/sin of a sum expanded, simplifies to 0."""
    return sp.simplify(sp.expand(sp.expand_trig(sp.expand(lhs - rhs)))) == 0


d8 = 8
q8, k8 = sp.symbols(f"q0:{d8}", real=True), sp.symbols(f"k0:{d8}", real=True)
m_, n_ = sp.symbols("m n", real=True)
theta8 = [b ** sp.Rational(-2 * i, d8) for i in range(d8 // 2)]  # the text model's ladder
# alternate: pair i on axis i mod 2, at b^(-2i/d)
alternate_text = score(q8, k8, (m_, m_), (n_, n_), [i % 2 for i in range(d8 // 2)], theta8)
# halves: RoPE-1D of dimension d/2 on each axis, pair i on axis i // (d/4) at b^(-4 (i mod d/4) / d)
halves_freq = [b ** sp.Rational(-4 * (i % (d8 // 4)), d8) for i in range(d8 // 2)]
halves_text = score(q8, k8, (m_, m_), (n_, n_), [i // (d8 // 4) for i in range(d8 // 2)], halves_freq)
ladder_half_d = [b ** sp.Rational(-2 * j, d8 // 2) for j in range(d8 // 4)]  # RoPE-1D's ladder for dimension d/2
assert same(alternate_text, rope_1d(q8, k8, m_, n_, theta8))  # alternate: the text model's RoPE-1D
assert same(halves_text, rope_1d(q8, k8, m_, n_, ladder_half_d * 2))  # halves: RoPE-1D with the d/2 ladder twice
at = {b: 10000, m_: 0, n_: 3, **{s: 1 for s in q8 + k8}}
assert abs(float((halves_text - rope_1d(q8, k8, m_, n_, theta8)).subs(at))) > 0.1  # and not the text model's

# %% [markdown]
# The library against both statements, on random float64 q and k: `apply_rope_2d` with text on the diagonal is
# `apply_rope` bit for bit (alternate), and `apply_rope` with the doubled ladder (halves).

# %%
xq = torch.randn(3, 8, 64, generator=gen, dtype=torch.float64)
n_text = torch.tensor([0, 1, 2, 7, 100, 1000, 4095, 65535])
diag = torch.stack((n_text, n_text), -1)
text_2d = mm.apply_rope_2d(xq, diag, mm.rope_2d_inv_freq(64))
text_1d = rope_lib.apply_rope(xq, n_text, rope_lib.inv_freq(64))
assert torch.equal(text_2d, text_1d)
axial = mm.apply_rope_2d(xq, diag, mm.rope_2d_inv_freq(64, split="halves"), split="halves")
doubled = torch.cat((rope_lib.inv_freq(32), rope_lib.inv_freq(32)))
assert torch.allclose(axial, rope_lib.apply_rope(xq, n_text, doubled), rtol=1e-12, atol=1e-12)
gap_axial = (axial - rope_lib.apply_rope(xq, n_text, rope_lib.inv_freq(64))).abs().max().item()
assert gap_axial > 0.5

# %% tags=["nbval-check-output"]
n_equal = int((text_2d == text_1d).sum())
print(f"text at (n, n), alternate split: {n_equal} of {text_1d.numel()} entries equal to the text model's RoPE-1D")
print(f"text at (n, n), axial halves: RoPE-1D with b^(-4j/d) twice; off the text model's by up to {gap_axial:.1f}")

# %% [markdown]
# So RoPE-Tie below uses the alternate split with the text model's frequencies.
#
# ## 2. RoPE-Tie: where the patches go
#
# Put the text token before the image at $(L, L)$, patch $(r, c)$ at $(L + rs, L + ct)$ and ask for the text
# token after the image to be the next point of the same scaled grid, $(L + (h+1)s, L + (w+1)t)$, and on the
# diagonal. That is one condition, $(h+1)s = (w+1)t$. Then, with the alternate split ($d = 4$, symbolic $q$, $k$,
# $b$, $L$, $h$, $w$): the text token after the image scores against the one before it exactly as RoPE-1D at
# distance $(w+1)(h+1)$, and two patches score as a function of $(\Delta r, \Delta c)$ alone, whatever $L$, $r$,
# $c$. The score is relative (above), so the first claim is a statement about the offsets on the two axes, then one
# RoPE-1D identity at a symbolic distance $X$; the second is checked on the score at absolute positions:

# %% tags=["derivation"]
L, h, w, r, c, dr, dc = sp.symbols("L h w r c dr dc", positive=True)
s_, t_ = sp.symbols("s t", positive=True)


def patch(row, col):
    """RoPE-Tie position of patch (row, col) of an image after the text token at (L, L), grid steps s and t."""
    return (L + row * s_, L + col * t_)


on_diagonal = sp.Eq((h + 1) * s_, (w + 1) * t_)
t_of_s = sp.solve(on_diagonal, t_)[0]
assert sp.simplify(t_of_s - s_ * (h + 1) / (w + 1)) == 0
# integers: s = w + 1, t = h + 1 satisfy it ...
integer = {s_: w + 1, t_: h + 1}
assert sp.simplify(on_diagonal.lhs.subs(integer) - on_diagonal.rhs.subs(integer)) == 0
# ... and the next grid point after the image, patch (h + 1, w + 1), is (w + 1)(h + 1) past (L, L) on both axes
after = [coordinate.subs(integer) for coordinate in patch(h + 1, w + 1)]
assert all(sp.simplify(after[axis] - L - (w + 1) * (h + 1)) == 0 for axis in (0, 1))
# so (score relative) text after vs before = RoPE-2D at offset (X, X) = RoPE-1D at distance X
X = sp.symbols("X", positive=True)
assert same(score(q4, k4, (0, 0), (X, X), (0, 1), theta4), rope_1d(q4, k4, 0, X, theta4))
# non-integer: ask in addition that the image count as wh tokens, (h + 1) s = wh + 1 (so also (w + 1) t = wh + 1)
s_frac = sp.solve(sp.Eq((h + 1) * s_, w * h + 1), s_)[0]
assert sp.simplify(s_frac - (w * h + 1) / (h + 1)) == 0
assert sp.simplify((w + 1) * t_of_s.subs(s_, s_frac) - (w * h + 1)) == 0
# within the image: the score of patch (r, c) against patch (r + dr, c + dc), at absolute positions, equals the
# score at offset (dr s, dc t) from the origin - no L, r or c left
within = score(q4, k4, patch(r, c), patch(r + dr, c + dc), (0, 1), theta4)
assert same(within, score(q4, k4, (0, 0), (dr * s_, dc * t_), (0, 1), theta4))
sp.Eq(sp.Symbol("t"), t_of_s)

# %% [markdown]
# The library's `rope_tie_positions` against these formulas, with exact integer (and `Fraction`) arithmetic for
# every image up to $8 \times 8$ after a few text tokens: patch positions, the span the image takes for the
# text around it ($(w+1)(h+1) - 1$ positions, or $wh$ in the non-integer variant), and the next text token on
# the diagonal.

# %%
checked = 0
for hh, ww, prefix in itertools.product(range(1, 9), range(1, 9), (1, 4)):
    for integer_ in (True, False):
        layout = [("text", prefix), ("image", hh, ww), ("text", 1)]
        pos = mm.rope_tie_positions(layout, integer=integer_)
        anchor = prefix - 1
        if integer_:
            ss, tt = ww + 1, hh + 1
        else:
            ss, tt = Fraction(ww * hh + 1, hh + 1), Fraction(ww * hh + 1, ww + 1)
        expect = [(anchor + ri * ss, anchor + ci * tt) for ri in range(1, hh + 1) for ci in range(1, ww + 1)]
        got = pos[prefix:-1].tolist()
        if integer_:
            assert got == [list(p) for p in expect]
        else:
            assert got == [[float(a), float(b_)] for a, b_ in expect]
        span = (ww + 1) * (hh + 1) - 1 if integer_ else ww * hh
        assert mm.rope_tie_length(layout[:2], integer=integer_) - prefix == span
        assert pos[-1].tolist() == [anchor + span + 1] * 2
        checked += 1

# %% tags=["nbval-check-output"]
print(f"rope_tie_positions = the closed form for {checked} (image, prefix, variant) cases")

# %% [markdown]
# Two choices of ours: an image at the very start is anchored at the virtual token
# $(-1, -1)$ (the one that puts the first text token at 0), and an image right after another is anchored just
# before the position where a text token after the first image would start. Both are one rule: an image is
# anchored just before the running 1-D position. It makes positions shift-covariant: a layout $B$ placed after
# a layout $A$ gets its own positions plus $A$'s length, whatever $A$ and $B$ are.

# %%
pieces = [[("text", 2)], [("image", 2, 3)], [("image", 1, 1)], [("text", 1), ("image", 3, 2)], [("image", 2, 2)]]
for integer_ in (True, False):
    for a_, b_ in itertools.product(pieces, repeat=2):
        whole = mm.rope_tie_positions(a_ + b_, integer=integer_)
        na = len(mm.rope_tie_positions(a_, integer=integer_))
        assert torch.equal(whole[:na], mm.rope_tie_positions(a_, integer=integer_))
        shifted = mm.rope_tie_positions(b_, integer=integer_) + mm.rope_tie_length(a_, integer=integer_)
        assert torch.allclose(whole[na:], shifted, rtol=0, atol=1e-12)
        assert len({tuple(p) for p in whole.tolist()}) == len(whole)  # no two tokens share a position
start = mm.rope_tie_positions([("image", 2, 3), ("text", 1)])
assert start[0].tolist() == [-1 + 4, -1 + 3] and start[-1].tolist() == [-1 + 12] * 2

# %% [markdown]
# ## 3. What the scores see
#
# RoPE-2D (alternate, $d = 64$) on RoPE-Tie positions, random float64 q and k, with the library: (a) every pair
# of patches of a $3 \times 4$ image with the same $(\Delta r, \Delta c)$ has the same score, wherever the image
# sits; (b) a text token before the image and one after it score exactly as two text tokens $(w+1)(h+1)$ apart
# under RoPE-1D, i.e. with $(w+1)(h+1) - 1$ tokens between them.

# %%
qv, kv = torch.randn(2, 64, generator=gen, dtype=torch.float64)
theta64 = mm.rope_2d_inv_freq(64)


def tie_scores(pos):
    qr = mm.apply_rope_2d(qv.expand(len(pos), 64), pos, theta64)
    kr = mm.apply_rope_2d(kv.expand(len(pos), 64), pos, theta64)
    return qr @ kr.T


H, W = 3, 4
by_offset: dict[tuple[int, int], list[float]] = {}
across_checked = 0
for prefix in (1, 6, 250):
    pos = mm.rope_tie_positions([("text", prefix), ("image", H, W), ("text", 2)])
    sc = tie_scores(pos)
    for (i, (ri, ci)), (j, (rj, cj)) in itertools.product(enumerate(itertools.product(range(H), range(W))), repeat=2):
        by_offset.setdefault((rj - ri, cj - ci), []).append(sc[prefix + i, prefix + j].item())
    # (b) last text token before the image against the first after it
    before, after = prefix - 1, prefix + H * W
    one_d = (
        rope_lib.apply_rope(qv[None], torch.tensor([0]), rope_lib.inv_freq(64))
        @ rope_lib.apply_rope(kv[None], torch.tensor([(W + 1) * (H + 1)]), rope_lib.inv_freq(64)).T
    )
    assert torch.isclose(sc[before, after], one_d[0, 0], rtol=1e-12, atol=1e-12)
    across_checked += 1
spread = max(max(v_) - min(v_) for v_ in by_offset.values())
# every offset gives its own score (so the score does see the offset); rounded to 1e-6, far above the spread
distinct = len({round(v_[0], 6) for v_ in by_offset.values()})
assert spread < 1e-12 and distinct == len(by_offset)
print(f"largest score spread within one offset: {spread:.1e}")  # rounding-level, machine-dependent: not checked

# %% tags=["nbval-check-output"]
n_pairs = sum(len(v_) for v_ in by_offset.values())
print(f"{n_pairs} patch pairs in 3 placements: {len(by_offset)} (dr, dc) offsets, {distinct} distinct scores")
print(f"text before vs after the image = RoPE-1D at distance (w+1)(h+1) to 1e-12: {across_checked} of 3 placements")

# %% [markdown]
# ## 4. M-RoPE: Qwen2-VL's ids and rotation, against transformers
#
# `mrope_position_ids` computes the ids from the layout alone (an image is given as its patch grid before the
# $2 \times 2$ merge, as `image_grid_thw` holds it). We run transformers' own `get_rope_index` on synthetic token
# type sequences of the same layouts (its method needs only the merge size from the model, so it runs on a
# stand-in object), and its rotary embedding plus `apply_rotary_pos_emb` on random q; both through
# `rope_lib.companion.hf_reference`, the adapters `tests/test_multimodal.py` uses too.

# %%
from rope_lib.companion import hf_reference  # noqa: E402

mrope_cases = {
    "text only": [("text", 9)],
    "text, image, text": [("text", 3), ("image", 6, 8), ("text", 3)],
    "image first": [("image", 4, 6), ("text", 2)],
    "video, 3 frames": [("text", 2), ("video", 3, 4, 4), ("text", 2)],
    "video, 6 frames of 1x2": [("text", 1), ("video", 6, 2, 4), ("text", 2)],
    "mixed": [("text", 2), ("image", 2, 8), ("text", 1), ("video", 2, 6, 4), ("text", 3), ("image", 4, 4)],
}
ids_compared = 0
for name, layout in mrope_cases.items():
    hf_ids = hf_reference.qwen2_vl_rope_index([layout])[0][:, 0].T  # (3, batch, seq) -> (seq, 3)
    assert torch.equal(mm.mrope_position_ids(layout), hf_ids), name
    ids_compared += hf_ids.numel()

rotary = hf_reference.qwen2_vl_rotary(head_dim=64, rope_theta=1e6, mrope_section=(8, 12, 12))
ids = mm.mrope_position_ids(mrope_cases["mixed"])
qh = torch.randn(1, 2, len(ids), 64, generator=gen)
hf_q, _ = hf_reference.qwen2_vl_rotate(rotary, qh, qh, ids)
ours_q = mm.apply_mrope(qh.double(), ids, rope_lib.inv_freq(64, 1e6), (8, 12, 12))
rot_gap = (ours_q - hf_q.double()).abs().max().item()
assert rot_gap < 1e-4  # transformers forms the angles in float32
print(f"M-RoPE rotation vs transformers' rotary embedding + rotation: max |diff| {rot_gap:.1e}")  # float32: not checked

# %% tags=["nbval-check-output"]
print(f"M-RoPE ids = transformers' get_rope_index on {len(mrope_cases)} layouts: {ids_compared} ids, all equal")

# %% [markdown]
# The same two properties hold for M-RoPE: text has equal ids on all three axes, so it is the text model's
# RoPE-1D whatever `mrope_section` is; within an image the temporal id is constant and the score depends only on
# $(\Delta r, \Delta c)$:

# %%
text_ids = mm.mrope_position_ids([("text", 40)])
for section in ((8, 12, 12), (32, 0, 0), (2, 15, 15)):
    assert torch.equal(
        mm.apply_mrope(xq[:, :1].expand(3, 40, 64), text_ids, rope_lib.inv_freq(64), section),
        rope_lib.apply_rope(xq[:, :1].expand(3, 40, 64), torch.arange(40), rope_lib.inv_freq(64)),
    )
m_offsets: dict[tuple[int, int], list[float]] = {}
for prefix in (1, 9):
    img = mm.mrope_position_ids([("text", prefix), ("image", 2 * H, 2 * W)])[prefix:]
    assert (img[:, 0] == img[0, 0]).all()  # one temporal id for the whole image
    qr = mm.apply_mrope(qv.expand(H * W, 64), img, rope_lib.inv_freq(64), (8, 12, 12))
    kr = mm.apply_mrope(kv.expand(H * W, 64), img, rope_lib.inv_freq(64), (8, 12, 12))
    sc = qr @ kr.T
    for (i, (ri, ci)), (j, (rj, cj)) in itertools.product(enumerate(itertools.product(range(H), range(W))), repeat=2):
        m_offsets.setdefault((rj - ri, cj - ci), []).append(sc[i, j].item())
assert max(max(v_) - min(v_) for v_ in m_offsets.values()) < 1e-12
assert len({round(v_[0], 6) for v_ in m_offsets.values()}) == len(m_offsets)  # every offset its own score

# %% [markdown]
# Three remarks **(ours)**, asserted below:
#
# * *Span.* M-RoPE advances the text position past an image by $\max(h', w')$ (merged rows and columns), far
#   less than the $h'w'$ of flattening or RoPE-Tie's $(w'+1)(h'+1) - 1$.
# * *Video in the installed transformers (5.23.0).* Its `get_rope_index` advances past a video by
#   $\max(h', w')$ too, ignoring the number of frames. transformers 4.45.0's `get_rope_index`
#   (`models/qwen2_vl/modeling_qwen2_vl.py`) started the text after any image or video one past the largest id
#   used so far, i.e. $\max(t, h', w')$ past the start (`advance="thw"` here). With the installed rule, a video with
#   more frames than merged rows and columns is followed by text that reuses temporal ids of the video. Only the
#   installed behaviour is the parity target here; the 4.45.0 rule is described from its code, not run.
# * *Frequencies.* Sections are contiguous: with Qwen2-VL's $(16, 24, 24)$ of 64 pairs and $b = 10^6$, the width
#   id only drives the 24 slowest pairs, whose fastest wavelength is $2\pi b^{80/128} \approx 3.5\times10^4$
#   positions: across a row of 100 merged patches they turn by less than 0.02 rad. Su's alternate split gives
#   each axis every other frequency instead (Huang et al., arXiv:2510.23095, make the same point for M-RoPE
#   and interleave the sections).

# %%
long_video = mrope_cases["video, 6 frames of 1x2"]
ids_hw, ids_thw = mm.mrope_position_ids(long_video), mm.mrope_position_ids(long_video, advance="thw")
video_t = ids_hw[1:-2, 0]
assert ids_hw[-2, 0] <= video_t.max() and ids_thw[-2, 0] == video_t.max() + 1  # reuse vs one past
spans = []
for hh, ww in ((2, 2), (4, 6), (16, 16), (32, 48)):
    tie = mm.rope_tie_length([("text", 1), ("image", hh, ww)]) - 1
    tie_frac = mm.rope_tie_length([("text", 1), ("image", hh, ww)], integer=False) - 1
    m_span = int(mm.mrope_position_ids([("text", 1), ("image", 2 * hh, 2 * ww), ("text", 1)])[-1, 0]) - 1
    assert tie == (ww + 1) * (hh + 1) - 1 and abs(tie_frac - hh * ww) < 1e-9 and m_span == max(hh, ww)
    spans.append((hh, ww, hh * ww, tie, tie_frac, m_span))
theta_qwen = rope_lib.inv_freq(128, 1e6)  # Qwen2-VL: head dim 128, b = 10^6
width_pairs = mm.mrope_pair_axes(mm.QWEN2_VL_MROPE_SECTION) == 2
fastest_width = theta_qwen[width_pairs].max().item()
assert width_pairs.nonzero()[0].item() == 40 and 100 * fastest_width < 0.02

# %% tags=["nbval-check-output"]
print("positions an image of h' x w' tokens takes for the text around it")
print(f"{'image':>8s} {'flattened':>10s} {'RoPE-Tie':>9s} {'non-integer':>12s} {'M-RoPE':>7s}")
for hh, ww, flat, tie, tie_frac, m_span in spans:
    print(f"{hh:>3d} x {ww:<3d} {flat:>10d} {tie:>9d} {tie_frac:>12.0f} {m_span:>7d}")
print(f"Qwen2-VL width pairs: fastest wavelength {2 * torch.pi / fastest_width:.3g} positions")
print(f"6-frame video of 1x2: text resumes at {int(ids_hw[-2, 0])} (installed), {int(ids_thw[-2, 0])} (4.45.0's rule)")

# %% [markdown]
# ## 5. One sequence, three position planes
#
# Three text tokens, a $3 \times 4$ image, three text tokens. Flattened RoPE-1D puts every token on the diagonal
# (a 1-D position $p$ is the point $(p, p)$ of the plane); RoPE-Tie spreads the image over a scaled grid between
# the two text runs; M-RoPE (height and width ids; the temporal id of the image is constant) packs it into a
# $3 \times 4$ block whose first patch sits on the diagonal right after the text before it.

# %%
fig_layout = [("text", 3), ("image", 3, 4), ("text", 3)]
kinds = mm.layout_token_kinds(fig_layout)
n_tok = len(kinds)
flat = torch.arange(n_tok)[:, None].expand(n_tok, 2)
tie_pos = mm.rope_tie_positions(fig_layout)
mrope_pos = mm.mrope_position_ids([("text", 3), ("image", 6, 8), ("text", 3)])[:, 1:]  # (height, width) ids
assert mm.mrope_token_kinds([("text", 3), ("image", 6, 8), ("text", 3)]) == kinds
assert mrope_pos[3].tolist() == [3, 3] and tie_pos[2].tolist() == [2, 2]  # first patch / anchor, as described
role = ["text before"] * 3 + ["image patch"] * 12 + ["text after"] * 3
style = {"text before": ("o", "C0"), "image patch": ("s", "C1"), "text after": ("^", "C2")}

fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
panels = (
    ("flattened RoPE-1D: $(p, p)$", flat),
    ("RoPE-Tie: $(x, y)$", tie_pos),
    ("M-RoPE: (height, width) ids", mrope_pos),
)
for ax, (title, pos) in zip(axes, panels):
    for label, (marker, color) in style.items():
        sel = [i for i, r_ in enumerate(role) if r_ == label]
        ax.scatter(pos[sel, 0], pos[sel, 1], marker=marker, color=color, s=36, label=label, zorder=3)
    for i in range(n_tok):  # token index next to each point
        ax.annotate(str(i), (float(pos[i, 0]), float(pos[i, 1])), textcoords="offset points", xytext=(4, 3), fontsize=7)
    top = float(pos.max()) + 1
    ax.plot([0, top], [0, top], color="0.8", lw=0.8, zorder=1)  # the text diagonal
    ax.set_title(title)
    ax.set_xlabel("first axis (x / height)")
    ax.set_aspect("equal")
axes[0].set_ylabel("second axis (y / width)")
axes[0].legend(loc="upper left", fontsize=8)
fig.suptitle("3 text tokens, a 3 x 4 image, 3 text tokens: positions under three schemes")
fig.tight_layout()
savefig(fig, "11_multimodal_positions", profile=profile)
plt.show()

# %% [markdown]
# ## Summary
#
# * RoPE-2D scores depend only on the 2-D offset (sympy, $d = 4$). Text at $(n, n)$ is exactly the text model's
#   RoPE-1D ($\theta_i = b^{-2i/d}$, bit for bit in `rope_lib`) when pair $i$ keeps $\theta_i$ and the axes
#   alternate; the axial "two halves" RoPE-2D gives text a RoPE-1D with the ladder $b^{-4j/d}$ used twice
#   **(ours)**.
# * RoPE-Tie: the text after an image lands on the diagonal iff $(h+1)s = (w+1)t$; $s = w+1$, $t = h+1$ make
#   the image count as $(w+1)(h+1) - 1$ tokens, Su's non-integer $s, t$ as exactly $wh$. Within an image the
#   score depends only on $(\Delta r, \Delta c)$; across it, text sees RoPE-1D at distance $(w+1)(h+1)$.
# * **(ours)** An image at the start is anchored at $(-1, -1)$ and back-to-back images chain through the running
#   position; positions of a concatenation are a shift.
# * M-RoPE: `rope_lib` equals transformers' `get_rope_index` and rotation (5.23.0). **(ours)** The installed
#   transformers resumes text after a video at $\max(h', w')$, ignoring frames (transformers 4.45.0 took
#   $\max(t, h', w')$); Qwen2-VL's contiguous sections leave the width axis only the slowest pairs.
