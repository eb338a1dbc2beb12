"""Images: style encoder, conditioned AdaIN generator, masks, rendering, image metrics."""

# --- networks, weights, encoder, generator runtime (stylizer nets helper) ---
from stylizer.encoder import StyleEncoder
from stylizer.networks import ConditionedAdaINGenerator, StylePredictor
from stylizer.runtime import GeneratorRuntime, make_generator_runtime
from stylizer.weights import WeightsUnavailableError, load_generator, load_style_predictor

__all__ = [
    "ConditionedAdaINGenerator",
    "GeneratorRuntime",
    "StyleEncoder",
    "StylePredictor",
    "WeightsUnavailableError",
    "load_generator",
    "load_style_predictor",
    "make_generator_runtime",
]
# --- end networks block ---

# --- rendering and contact sheets (stylizer finishing helper) ---
from stylizer.renderer import Renderer  # noqa: E402
from stylizer.sheet import contact_sheet  # noqa: E402

__all__ += ["Renderer", "contact_sheet"]
# --- end rendering block ---
