"""Task Routing: the sharing ratio sigma (one, or one per routed conv layer), the mask mode and task sampling."""
from search_spaces.common import training
from search_spaces.ranges import Choice, Float, OnePerLayer, draw

ROUTED_LAYERS = 2  # conv layers of the default CNN backbone; VGG users set their own count

RANGES = {"sigma": OnePerLayer(Float(0.0, 1.0), ROUTED_LAYERS, switch="sigma_per_layer"),
          "mask_mode": Choice(("partition", "knockout")),
          # one task per batch (Algorithm 1) needs many more epochs than a short search gives it
          "task_sampling": Choice(("all", "one"))}


def parameters(trial) -> dict:
    return draw(trial, RANGES)


def space(trial) -> dict:
    return {"strategy": "task_routing", **parameters(trial), **training(trial)}
