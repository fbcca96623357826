"""rope_lib: RoPE and context-length extension, implemented once (needs torch and numpy only).

The public names below are stable (see the README); each lives in the one module that owns its idea.
"""

from .base_bound import base_lower_bound, max_context_length, rope_bias_sum
from .decoding import RawKVCache, dynamic_rope_step, stale_cache_error

# --- MLA, attention as a recurrence, multimodal positions (rope_lib/mla.py, recurrent.py, multimodal.py) ---
from .mla import MLAConfig, kv_cache_bytes, kv_cache_elements, mla_attention, mla_attention_absorbed
from .multimodal import apply_mrope, apply_rope_2d, mrope_position_ids, rope_tie_positions
from .recurrent import recurrent_attention, rnn_state_size

# --- ReRoPE / Leaky ReRoPE (rope_lib/rerope.py) ---
from .rerope import (
    rerope_attention,
    rerope_attention_flex,
    rerope_attention_reference,
    rerope_decode_step,
    rerope_relative_position,
)
from .rope import LAYOUTS, angles, apply_rope, convert_layout, inv_freq, layout_permutation

# --- transformers-style rope_parameters dicts and config objects into frequencies (rope_lib/rope_parameters.py) ---
from .rope_parameters import ROPE_TYPES, TRANSFORMERS_ROPE_TYPES, frequencies

# --- scaling methods (rope_lib/scaling.py) ---
from .scaling import (
    default_frequencies,
    dynamic_ntk_frequencies,
    dynamic_yarn_frequencies,
    linear_frequencies,
    llama3_frequencies,
    log_n_scale,
    longrope_frequencies,
    ntk_by_parts_frequencies,
    ntk_fixed_frequencies,
    ntk_frequencies,
    ntk_mixed_frequencies,
    yarn_correction_range,
    yarn_frequencies,
)

# --- Position Interpolation's interpolation bound and Fig. 2 fit (rope_lib/score_bounds.py) ---
from .score_bounds import (
    attention_score,
    bound_ratio,
    extrapolation_sum,
    fit_attention_score,
    interpolation_bound,
    interpolation_error,
)

# The companion's machinery (corpus, small LM, training, experiments, report, plotting) is the subpackage
# rope_lib.companion; it imports this library, never the other way, and is not imported here.

__version__ = "0.1.0"

__all__ = [
    "LAYOUTS",
    "MLAConfig",
    "ROPE_TYPES",
    "RawKVCache",
    "TRANSFORMERS_ROPE_TYPES",
    "angles",
    "apply_mrope",
    "apply_rope",
    "apply_rope_2d",
    "attention_score",
    "base_lower_bound",
    "bound_ratio",
    "convert_layout",
    "default_frequencies",
    "dynamic_ntk_frequencies",
    "dynamic_rope_step",
    "dynamic_yarn_frequencies",
    "extrapolation_sum",
    "fit_attention_score",
    "frequencies",
    "interpolation_bound",
    "interpolation_error",
    "inv_freq",
    "kv_cache_bytes",
    "kv_cache_elements",
    "layout_permutation",
    "linear_frequencies",
    "llama3_frequencies",
    "log_n_scale",
    "longrope_frequencies",
    "max_context_length",
    "mla_attention",
    "mla_attention_absorbed",
    "mrope_position_ids",
    "ntk_by_parts_frequencies",
    "ntk_fixed_frequencies",
    "ntk_frequencies",
    "ntk_mixed_frequencies",
    "recurrent_attention",
    "rerope_attention",
    "rerope_attention_flex",
    "rerope_attention_reference",
    "rerope_decode_step",
    "rerope_relative_position",
    "rnn_state_size",
    "rope_bias_sum",
    "rope_tie_positions",
    "stale_cache_error",
    "yarn_correction_range",
    "yarn_frequencies",
]
