"""Layer 4, what the study searches and how: the :class:`Search` protocol (``base``: the default of every
hook), the sampled searches (tpe, gp, random, grid) and the halving search behind it, ``tune.search``'s
value → class (``registry``), and the space they share (anchors, points, fidelities, the pruners)."""

from autoinit.tuner.common.exports import lazy_exports

_EXPORTS = {
    "Search": "base",
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
    "measured_of": "halving",
    "queued_rounds": "halving",
    "relative_noise": "halving",
    "spent_member_steps": "halving",
    "SEARCHES": "registry",
    "SearchKind": "registry",
    "make_sampler": "registry",
    "search_for": "registry",
    "search_type": "registry",
    "GPSearch": "sampled",
    "GridSearch": "sampled",
    "RandomSearch": "sampled",
    "SampledSearch": "sampled",
    "TPESearch": "sampled",
    "AnchorSparingHyperbandPruner": "space",
    "AnchorSparingMedianPruner": "space",
    "Fidelity": "space",
    "Point": "space",
    "SeededPerTrial": "space",
    "anchors": "space",
    "make_pruner": "space",
    "suggest": "space",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
