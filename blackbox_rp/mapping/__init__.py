"""Output label mappings ``O_ω``: from the source model's answers to target-class probabilities.

Fitted only from oracle outputs and target labels. Each declares what it needs:

===========  ========  ======================================================
name         needs     what it is
===========  ========  ======================================================
identity     label     target t = source t
rlm          label     random one-to-one (seeded)
derangement  label     fixed random permutation with no fixed point (REFINE)
flm          label     greedy one-to-one on top-1 counts (Chen et al., CVPR 2023)
ilm          label     FLM refitted every epoch (``refit_every = "epoch"``)
blm          label     Bayesian-guided ω from top-1 counts (Cai et al., NeurIPS 2024)
blm+         topk      Bayesian-guided ω from top-k probability mass
linear       topk      logistic regression on log-scores, jointly trainable
===========  ========  ======================================================

Over a language model's next-token answers (:mod:`blackbox_rp.mapping.tokens`):
``verbalizer``, ``token-flm``, ``token-blm``, ``token-blm+``, ``token-linear``.

>>> from blackbox_rp.mapping import make_mapping
>>> make_mapping("blm+", 1000, 10).needs
'topk'
>>> make_mapping("blm+", 1000, 10, exposure="label")
Traceback (most recent call last):
...
blackbox_rp.exposure.ExposureError: label mapping 'blm+' needs 'topk' outputs but the oracle's exposure gives only 'label' ...
"""

from . import bayesian, fixed, linear, onetoone, tokens  # noqa: F401  (registers the built-in mappings)
from .base import LabelMapping, MappingConfig, count_matrix, normalize_rows
from .registry import MAPPINGS, make_mapping, register_mapping

__all__ = ["LabelMapping", "MappingConfig", "MAPPINGS", "make_mapping", "register_mapping", "count_matrix",
           "normalize_rows"]
