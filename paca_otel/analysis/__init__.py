"""Analysis of recorded metrics.

- :mod:`paca_otel.analysis.detectors`: online anomaly detectors (``update(timestamp, value)``).
- :mod:`paca_otel.analysis._streaming`: their O(log n) streaming building blocks.
- :mod:`paca_otel.analysis._nab`: NAB's scoring, to measure detectors on labelled series.
- :mod:`paca_otel.analysis._cli`: ``paca-otel anomalies FILE.csv``.
- :mod:`paca_otel.analysis.source`: the ``SeriesSource`` seam;
  :mod:`~paca_otel.analysis._memory_source` holds series in memory (tests, notebooks).
- History: :mod:`~paca_otel.analysis.history` (the embedded store: ``append``,
  ``record_metrics_data``, ``query_range``, tiers and retention) with its chunk codec
  (:mod:`~paca_otel.analysis._chunks`), tables (:mod:`~paca_otel.analysis._history_table`),
  reader (:mod:`~paca_otel.analysis._history_reader`), roll-ups
  (:mod:`~paca_otel.analysis._rollup`), tiers (:mod:`~paca_otel.analysis._tiers`), collection
  recording (:mod:`~paca_otel.analysis._recording`) and matchers
  (:mod:`~paca_otel.analysis._matchers`); :mod:`~paca_otel.analysis.prometheus_source` reads a
  Prometheus server instead.
- Analysers: :mod:`~paca_otel.analysis.trend` (Theil-Sen, Mann-Kendall),
  :mod:`~paca_otel.analysis.changepoints`, :mod:`~paca_otel.analysis.seasonality`,
  :mod:`~paca_otel.analysis.forecast` (intervals, time to threshold),
  :mod:`~paca_otel.analysis._red` and :mod:`~paca_otel.analysis.routes` (per-route RED figures,
  slowest routes, error hot spots, latency regressions).
- SLOs: :mod:`~paca_otel.analysis.slo` (status, error budget) and
  :mod:`~paca_otel.analysis._slo_rules` (multi-window burn-rate alert rules).
- Reports: :mod:`~paca_otel.analysis.report` (``generate_report``), its steps
  (:mod:`~paca_otel.analysis._report_steps`), model (:mod:`~paca_otel.analysis._report_model`),
  suggestions (:mod:`~paca_otel.analysis.suggestions`), renderers
  (:mod:`~paca_otel.analysis.report_render`, :mod:`~paca_otel.analysis._report_html`) and
  ``paca-otel report`` (:mod:`~paca_otel.analysis._report_cli`).
"""
