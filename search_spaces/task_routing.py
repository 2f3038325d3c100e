"""Task Routing: the sharing ratio sigma (one, or one per routed conv layer), the mask mode and task sampling."""
from search_spaces.common import training

ROUTED_LAYERS = 2  # conv layers of the default CNN backbone; VGG users set their own count


def parameters(trial) -> dict:
    if trial.suggest_categorical("sigma_per_layer", (False, True)):
        sigma = [trial.suggest_float(f"sigma_{i}", 0.0, 1.0) for i in range(ROUTED_LAYERS)]
    else:
        sigma = trial.suggest_float("sigma", 0.0, 1.0)
    return {"sigma": sigma, "mask_mode": trial.suggest_categorical("mask_mode", ("partition", "knockout")),
            # one task per batch (Algorithm 1) needs many more epochs than a short search gives it
            "task_sampling": trial.suggest_categorical("task_sampling", ("all", "one"))}


def space(trial) -> dict:
    return {"strategy": "task_routing", **parameters(trial), **training(trial)}
