"""GAN training: the families' networks in an explicit registry (``models``), the adversarial losses
(``losses``) and the one training loop with its checkpoints and generator files (``train``)."""
