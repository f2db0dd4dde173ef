"""Sweeps without Ray: what a sweep searches and how a trial scores. The classifier sweep over a trained
run (``classifier``: its grid, checks, training sets, one trial and its rows) and the training data of
its protocol cells (``cells``, seed 001's Table 1); the GAN search (``gan``: a trial's point, folder,
rows and the best trial as a config) and one GAN trial trained and scored in rungs (``gan_trial``);
and what both share (``shared``: storage, the refusals before any work, a trial's device). The space of
the GAN search is the config's (raygan.config.gan_space); the Tune wiring is raygan.cluster.sweep and
raygan.cluster.sweep_gan, as Ray's pbt_dcgan example keeps the GAN maths apart from Tune."""
