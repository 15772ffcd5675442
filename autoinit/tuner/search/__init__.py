"""Layer 4, what the study searches and how: the space (anchors, points, fidelities), the samplers and
pruners, the halving search."""

from autoinit.tuner.common.exports import lazy_exports

_EXPORTS = {
    "HalvingPlan": "halving",
    "HalvingSearch": "halving",
    "Measured": "halving",
    "NOISE_PRIOR": "halving",
    "NOISE_Z": "halving",
    "ROUND_FULL": "halving",
    "ROUND_LONGER": "halving",
    "ROUND_SCREEN": "halving",
    "gains_of": "halving",
    "grid_member_steps": "halving",
    "is_baseline": "halving",
    "make_search": "halving",
    "measured_of": "halving",
    "queued_rounds": "halving",
    "relative_noise": "halving",
    "spent_member_steps": "halving",
    "AnchorSparingHyperbandPruner": "space",
    "AnchorSparingMedianPruner": "space",
    "Fidelity": "space",
    "Point": "space",
    "SeededPerTrial": "space",
    "anchors": "space",
    "make_pruner": "space",
    "make_sampler": "space",
    "suggest": "space",
    "target_trials": "space",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
