"""The memorisation audit (``raygan audit RUN``): the per-class distance statistics and verdict
(``statistics``), what it reads from a run folder (``inputs``), the figure and text (``render``) and the
whole audit in one process (``run``). The chunked nearest-neighbour search is raygan.metrics.memorisation."""
