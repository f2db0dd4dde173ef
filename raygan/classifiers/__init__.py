"""Classifiers, a stage below the ensemble, the metrics and the evaluation that train them: the
downstream and boosting networks (``networks``), the batch augmentations of classifier training
(``augment``) and the one way to fit them (``fit``: train_classifier, fit_classifier with the
config's eval.* settings, and the batched forward pass every classifier user shares)."""
