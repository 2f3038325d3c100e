"""The training parameters every space samples (learning rate, epochs, batch size), and a choice of strategy."""

LR = (1e-3, 1e-2)
EPOCHS = (3, 6)
BATCH_SIZES = (32, 64, 128)


def training(trial) -> dict:
    return {"lr": trial.suggest_float("lr", *LR, log=True),
            "epochs": trial.suggest_int("epochs", *EPOCHS),
            "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES)}


def one_of(trial, name: str, strategies: dict) -> dict:
    """The strategy (the categorical `name`), then its parameters (conditional on it), then training's."""
    strategy = trial.suggest_categorical(name, tuple(strategies))
    return {"strategy": strategy, **strategies[strategy](trial), **training(trial)}
