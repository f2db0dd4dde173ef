"""What a person reads: the run report with the papers' numbers beside ours (``report``), the demo's
summary (``demo``) and seed 000's Table 1 on the 25-Gaussian grid (``table1``)."""
