"""Input transformations ``I_θ``: visual prompts between the target task and the frozen model.

Every transform maps a flat θ (its ``dim`` is known at construction) and a
batch of target images (N, C_in, H_in, W_in) in [0, 1] to the model's input
(N, channels, S, S) in [0, 1]:

* ``none`` — resize onto the canvas, dim 0 (zero-shot baseline);
* ``pad`` — learnable full-resolution frame around the resized image;
* ``full`` — learnable full-resolution pattern under a mask (all-ones by default);
* ``lowdim`` — small 3×8×8 pattern upsampled, tanh, frame mask (192-d);
* ``coordinator`` — BlackVIP: frozen encoder + light learnable decoder, an input-dependent prompt;
* ``unet`` — REFINE's input transformation: a small U-Net whose sigmoid output is the model's input;
* ``views`` — K canvases of each image, no prompt (the multi-view probe): K model inputs per target;
* ``discrete`` — a text template with L learnable word slots (categorical θ), for language models;
* ``soft`` — BBT: soft prompt rows A·z + p₀ before a text template (continuous z), for a language model
  that takes embeddings (built from the oracle: :class:`BuiltFromOracle`).

All implement :class:`InputTransform` (θ's search space, θ₀, ``apply``, ``describe``), the protocol
text prompts implement too.

>>> from blackbox_rp.transforms import make_transform, TRANSFORMS
>>> sorted(TRANSFORMS)
['coordinator', 'discrete', 'full', 'lowdim', 'none', 'pad', 'soft', 'unet', 'views']
>>> make_transform("pad", in_shape=(1, 28, 28), out_size=96).dim
18240
"""

from . import additive, coordinator, none, soft_prompt, text_prompt, unet, views  # noqa: F401  (registers the built-in transforms)
from .base import CanvasConfig, Transform, TransformError
from .protocol import BuiltFromOracle, DifferentiableTransform, InputTransform, concat_inputs
from .registry import TRANSFORMS, build_transform, make_transform, register_transform

__all__ = ["InputTransform", "BuiltFromOracle", "DifferentiableTransform", "concat_inputs", "Transform", "TransformError",
           "CanvasConfig", "TRANSFORMS", "build_transform", "make_transform", "register_transform"]
