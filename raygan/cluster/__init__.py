"""The only package that imports ray: runtime, member tasks, the AdaGAN driver actor, shards, pipeline.

Everything here wraps core functions (raygan.ensemble, raygan.gan.train, raygan.ensemble.boosting, raygan.synthesis)
that run and are tested without Ray.
"""
