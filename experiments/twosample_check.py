"""Classifier two-sample AUCs of the shipped demo model against fresh Monte Carlo data.

    python -m ljvae_core demo      # makes the fresh dataset 'demo' in cache/
    python -m experiments.twosample_check

Prints, as JSON, the AUC of Monte Carlo against itself (two halves: the floor), of raw
generated samples and of reconstructions against the other half, and of two Monte Carlo
state points (gamma 0.5 against 1) for scale.
"""

import json

import numpy as np

from ljvae_core.artifacts import load_dataset
from ljvae_core.demo import DEMO_DATASET, SHIPPED_MODEL
from ljvae_core.model_store import import_model
from ljvae_core.twosample import classifier_auc


def main() -> None:
    data, trained = load_dataset(DEMO_DATASET), import_model(SHIPPED_MODEL)
    first = np.arange(len(data)) % 2 == 0
    mc, other = data.coords[first], data.coords[~first]
    print(json.dumps({
        "monte_carlo_halves": classifier_auc(mc, other, data.system),
        "generated_raw": classifier_auc(trained.generate(len(mc), seed=1), other,
                                        data.system),
        "reconstructed": classifier_auc(trained.reconstruct(mc), other, data.system),
        "gamma_0.5_vs_1": classifier_auc(data.coords[data.gamma == 0.5],
                                         data.coords[data.gamma == 1.0], data.system),
    }, indent=1))


if __name__ == "__main__":
    main()
