"""Analysis of recorded metrics.

- :mod:`paca_otel.analysis.detectors`: online anomaly detectors (``update(timestamp, value)``).
- :mod:`paca_otel.analysis.streaming`: their O(log n) streaming building blocks.
- :mod:`paca_otel.analysis.nab`: NAB's scoring, to measure detectors on labelled series.
- :mod:`paca_otel.analysis.cli`: ``paca-otel anomalies FILE.csv``.
"""
