"""What the synthetic set is worth downstream: the classifier protocols (``protocols``: TSTR, TRTR,
TRTS, mixing, filtering), the ensemble-size curves and the evaluation of a run (``curves``), the
downstream and boosting classifiers (``classifiers``), batch augmentations (``augment``) and the PCA
baseline (``pca``)."""
