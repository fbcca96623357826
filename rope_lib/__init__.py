"""rope_lib: RoPE and context-length extension, implemented once.

The public names below are stable (see the README); each lives in the one module that owns its idea.
"""

from .plotting import savefig, use_style
from .rope import LAYOUTS, angles, apply_rope, convert_layout, inv_freq, layout_permutation
from .utils import cache_dir, figures_dir, pick_device, repo_root, results_dir, seed_everything

# --- scaling methods (rope_lib/scaling.py) ---
# --- ReRoPE / Leaky ReRoPE (rope_lib/rerope.py) ---
# --- small LM experiment stack (data/model/train/evaluate) are imported as submodules ---

__version__ = "0.1.0"
