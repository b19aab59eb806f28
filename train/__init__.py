"""fundusrt.train: phantoms, datasets, targets, metrics, models and training.

Imports ``fundusrt.runtime`` for every piece of pre- and post-processing that must be the
same at training and at deployment time.
"""
