"""Robustness and backdoor-defense studies through black-box reprogramming.

* :mod:`.triggers` — BadNets, blended and sample-specific noise triggers, composable functions on image batches.
* :mod:`.poisoning` — a poisoned training set at a given rate and target class.
* :mod:`.metrics` — clean accuracy and attack success rate (non-target inputs only), with Wilson intervals.
* :mod:`.refine` — REFINE through queries alone (an input transform and a fixed label derangement trained on
  the suspect model's own predictions), and its white-box ceiling.
* :mod:`.exposure_study` — one reprogramming task under probability, top-k, label-only, rounded and noisy
  exposures.

Backdoored models to study are made in :mod:`oracles.models.backdoor_cnn` (bundled as
``fmnist-cnn-badnets`` and ``fmnist-cnn-blended``; ``fmnist-cnn`` is the clean control);
``blackbox-rp defend`` runs the defense from the command line.
"""

from .metrics import Rate, attack_success_rate, backdoor_metrics, clean_accuracy, wilson_interval
from .poisoning import Poisoned, poison
from .triggers import BadNets, Blended, SampleNoise, compose, make_trigger, parse_trigger

__all__ = ["BadNets", "Blended", "SampleNoise", "compose", "make_trigger", "parse_trigger", "poison", "Poisoned",
           "Rate", "wilson_interval", "clean_accuracy", "attack_success_rate", "backdoor_metrics"]
