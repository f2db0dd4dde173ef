"""The only package that imports ray: runtime, member tasks, the AdaGAN driver actor, shards, pipeline.

Everything here wraps core functions (raygan.ensemble, raygan.train, raygan.boosting, raygan.synth)
that run and are tested without Ray.
"""
