"""Ensembles of GANs: members and their seeds (``members``), the mixture of generators and its sample
allocation (``mixture``), the boosting maths (``boosting``) and the Ray-free boosting step loop
(``boosting_loop``) that the cluster's driver actor wraps."""
