"""Analysis of recorded metrics: streaming anomaly detectors and their NAB scoring."""
