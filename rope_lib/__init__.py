"""rope_lib: RoPE and context-length extension, implemented once.

The public names below are stable (see the README); each lives in the one module that owns its idea.
"""

from .decoding import RawKVCache
from .plotting import savefig, use_style
from .rope import LAYOUTS, angles, apply_rope, convert_layout, inv_freq, layout_permutation
from .utils import PROFILES, cache_dir, check_profile, figures_dir, pick_device, repo_root, results_dir, seed_everything

# --- scaling methods (rope_lib/scaling.py) ---
from .scaling import (
    ROPE_TYPES,
    TRANSFORMERS_ROPE_TYPES,
    default_frequencies,
    dynamic_ntk_frequencies,
    dynamic_rope_step,
    dynamic_yarn_frequencies,
    frequencies,
    linear_frequencies,
    llama3_frequencies,
    log_n_scale,
    longrope_frequencies,
    ntk_by_parts_frequencies,
    ntk_fixed_frequencies,
    ntk_frequencies,
    ntk_mixed_frequencies,
    stale_cache_error,
    yarn_correction_range,
    yarn_frequencies,
)
# --- ReRoPE / Leaky ReRoPE (rope_lib/rerope.py) ---
from .rerope import rerope_attention, rerope_attention_reference, rerope_decode_step, rerope_relative_position
# --- small LM experiment stack (data/model/train/evaluate) are imported as submodules ---

__version__ = "0.1.0"
