"""Layer 7, trials trained together: the stacked engine, its functional ops, a population's trials and
its batches in a study."""

from autoinit.tuner.common.exports import lazy_exports

_EXPORTS = {
    "EngineTimes": "engine",
    "Member": "engine",
    "MemberOutcome": "engine",
    "PopulationFailed": "engine",
    "PopulationUnsupported": "engine",
    "device_of": "engine",
    "static_reason": "engine",
    "train_population": "engine",
    "ELEMENTWISE_OPTIMIZERS": "functional",
    "MULTIPLICATIVE_SCHEDULERS": "functional",
    "Stack": "functional",
    "clip_grad_norm": "functional",
    "clip_grad_value": "functional",
    "keep_members": "functional",
    "per_member": "functional",
    "scale_updates": "functional",
    "MODEL_BASED_BATCH_SHARE": "study",
    "PopulationBatch": "study",
    "batch_trials": "study",
    "population_runner": "study",
    "free_bytes": "trials",
    "iter_population_trials": "trials",
    "member_bytes": "trials",
    "population_size": "trials",
    "probe": "trials",
    "run_population_trials": "trials",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
