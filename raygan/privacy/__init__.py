"""Differential privacy for the released set (issue 26): DP-SGD on each member's discriminator
(``dpsgd``: Poisson-sampled real records, each record's gradient clipped, Gaussian noise on their sum;
the fakes are not private and keep their ordinary gradient), one accountant over the whole ensemble
(``accountant``: the noise solved from the target before any training, the members' histories
composed with Opacus's accountant) and the ledger of what was spent and what was declared public
(``ledger``: privacy.json in the run folder and the manifest). Off unless privacy.epsilon is set."""
