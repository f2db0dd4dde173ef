"""Tools around runs: the cost plan from a measured probe (``plan``) and the benchmarks (``bench``)."""
