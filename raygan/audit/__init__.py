"""The memorisation audit: does the synthetic set copy its training images? (`raygan audit RUN`)

Seed 000 (Supplement C, Figures 9 and 10) searched every (real, synthetic) pair for the smallest mean
squared pixel difference and saw AdaGAN replicate training images after about 7 boosting steps, while
independent ensembles did not. This package owns that search and gives its numbers a reference:

- distance to closest record (DCR): for each synthetic sample, the mean squared difference to the
  nearest training image of its class, in pixel space ([-1, 1] scale) and in the domain feature space
  (raygan.metrics.domain). The same distance from a real holdout split no GAN saw is the reference: a
  generator that does not copy puts about 1 % of its samples below the holdout's 1st percentile;
- near-duplicates: synthetic samples within audit.near_duplicate_mse of a training image (pixels);
- membership inference: the AUROC of telling training from holdout images by their distance to the
  nearest synthetic sample (training images closer => a leak); 0.5 means no leak, 1 a copied set.

The search is exhaustive and chunked: blocks of chunk_size x chunk_size distances on a torch device,
never the N x M matrix (raygan.metrics.neighbours). The modules: ``statistics`` (per-class
distances, DCR quantiles, the verdict), ``inputs`` (what the audit reads from a run folder),
``render`` (the closest-pairs figure and the text) and ``run`` (the whole audit in one process);
raygan.cluster.audit runs ``audit_class`` as one Ray task per class and finishes here.
"""
