"""What the papers reported, copied from their published texts (cited per table).

Values are as printed (percent, mean ± std over the paper's runs); nothing here is derived from our runs.
"""
from __future__ import annotations

# Task Routing, Table 2 of the ICCV 2019 slides (002_*): accuracy, precision, recall (mean, std), 5 runs.
# FashionMNIST (10 one-vs-all tasks) stands next to mnist-5k and digits (10 one-vs-all tasks); Zappos50K
# (4 heterogeneous tasks) next to multimnist and multidigits (6 heterogeneous tasks).
TR_TABLE2 = {
    "FashionMNIST": {
        0.0: ((97.8, 0.25), (91.9, 0.44), (85.5, 0.32)),
        0.2: ((97.8, 0.06), (92.2, 0.11), (85.7, 0.03)),
        0.4: ((97.6, 0.05), (92.0, 0.08), (84.2, 0.07)),
        0.6: ((97.1, 0.10), (91.1, 0.08), (80.4, 0.08)),
        0.8: ((96.8, 0.08), (91.0, 0.08), (78.0, 0.03)),
        1.0: ((97.4, 0.01), (91.1, 0.07), (85.1, 0.04)),
    },
    "Zappos50K": {
        0.0: ((88.3, 0.31), (83.1, 0.54), (83.2, 0.42)),
        0.2: ((89.5, 0.03), (85.2, 0.04), (83.4, 0.12)),
        0.4: ((88.1, 0.17), (84.3, 0.18), (82.8, 0.14)),
        0.6: ((87.4, 0.11), (82.2, 0.17), (82.0, 0.13)),
        0.8: ((83.2, 0.04), (81.4, 0.01), (78.9, 0.01)),
        1.0: ((79.2, 0.10), (77.1, 0.09), (75.3, 0.08)),
    },
}
TR_PAPER_DATASET = {"digits": "FashionMNIST", "mnist-5k": "FashionMNIST", "multidigits": "Zappos50K",
                    "multimnist": "Zappos50K"}

# Task Routing, Table 3 (UCSD-Birds): which task counts each method ran at ("n/a" = could not scale).
TR_TABLE3_RAN = {"task_routing": {10: True, 50: True, 100: True, 200: True, 312: True},
                 "cross_stitch": {10: True, 50: False, 100: False, 200: False, 312: False}}
TR_SCALING_CLAIM = ("cross-stitch networks scale up to 12 tasks; Task Routing fits all 312 tasks, and its resource "
                    "use does not grow significantly with the number of tasks")

# Selective Sharing, OmniArt table of the ICMR 2019 paper (001_*): six classification accuracies (%)
# (AA, GC, CCC, SC, MC, STC), creation-year MAE, parameters, lock epoch, branches. Random is not in the table.
SS_OMNIART = {
    "single_task": {"acc": (28.0, 25.0, 32.1, 24.7, 41.3, 19.2), "mae": 144.32, "params": 3_487_664,
                    "lock": None, "branches": None},
    "hard_sharing": {"acc": (31.0, 26.2, 27.7, 23.0, 42.0, 22.1), "mae": 135.43, "params": 1_630_664,
                     "lock": None, "branches": 7},
    "similarity": {"acc": (33.8, 28.0, 29.0, 27.6, 44.1, 21.2), "mae": 128.11, "params": 908_264, "lock": 10,
                   "branches": 3},
    "dissimilarity": {"acc": (39.40, 21.10, 28.10, 23.82, 42.86, 19.01), "mae": 137.05, "params": 727_664,
                      "lock": 7, "branches": 2},
    "variance": {"acc": (43.73, 26.85, 31.20, 26.72, 40.43, 22.25), "mae": 129.79, "params": 727_664, "lock": 7,
                 "branches": 2},
}
SS_MNIST_SIMILARITY_ACCURACY = 99.0
SS_CLAIM = "fewer parameters than the hard-sharing (MTL) baseline at equal or better accuracy"
SS_RANDOM_CLAIM = ("every criterion improves on the random control ('a constant improvement over this method in all "
                   "cases', supplemental material A.2)")

# Stochastic Filter Groups (000_*, 003_*: poster and abstract; no tables in the poster or abstract).
SFG_DEPTH_CLAIM = "the ratio of task-specific groups increases with layer depth (UTKFace and prostate MRI)"
SFG_BASELINE_CLAIM = ("SFG improves on single-task networks, hard parameter sharing and cross-stitch networks "
                      "(UTKFace age + gender, prostate MRI)")

# What each strategy's paper claims against the baselines, for the all-strategies table.
CLAIMS = {
    "task_routing": "partial sharing beats hard sharing (Table 2)",
    "sfg": "beats single-task, hard sharing and cross-stitch",
    "selective_sharing": "fewer parameters than hard sharing at equal or better accuracy (random grouping, too: "
                         "section 4)",
    "task_affinity": "beyond the three papers (TAG, Fifty et al. 2021): groups chosen by look-ahead affinity train "
                     "better together than all tasks on one network",
}


def mean_accuracy(criterion: str) -> float:
    """The OmniArt table's mean over its six classification accuracies (%)."""
    values = SS_OMNIART[criterion]["acc"]
    return sum(values) / len(values)
