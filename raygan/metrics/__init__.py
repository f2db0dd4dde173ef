"""Sample-quality metrics, each named by the space it measures in."""
