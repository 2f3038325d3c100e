"""The training parameters every space samples (learning rate, epochs, batch size), and a choice of strategy."""
from search_spaces.ranges import Choice, Float, Int, draw

LR = (1e-3, 1e-2)
EPOCHS = (3, 6)
BATCH_SIZES = (32, 64, 128)
TRAINING = {"lr": Float(*LR, log=True), "epochs": Int(*EPOCHS), "batch_size": Choice(BATCH_SIZES)}


def training(trial) -> dict:
    return draw(trial, TRAINING)


def one_of(trial, name: str, strategies: dict) -> dict:
    """The strategy (the categorical `name`), then its ranges (conditional on it), then training's."""
    strategy = trial.suggest_categorical(name, tuple(strategies))
    return {"strategy": strategy, **draw(trial, strategies[strategy]), **training(trial)}
