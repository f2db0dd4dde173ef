"""From trained generators to the shipped set: seeded generation with optional truncation
(``generate``), PNG records of shard chunks (``records``), sample grids (``grids``) and the shard plan
and plain-pyarrow writer (``shards``) beside which the cluster's Ray Data writer sits."""
