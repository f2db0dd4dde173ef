"""What the synthetic set is worth downstream: the classifier protocols (``protocols``: TSTR, TRTR,
TRTS, mixing, filtering), the training sets (``measured``: the shards as written and the rule that
picks a T's set from them, else ``generated``: sets drawn anew from the generators, on the fly and
recursive rounds), the evaluation as units of work (``units``), the ensemble-size curve and the
evaluation of a run (``curves``), the evaluate and audit jobs without Ray (``job``) and the PCA
baseline (``pca``). The classifiers and their fit are raygan.classifiers; sweeps raygan.sweeps."""
