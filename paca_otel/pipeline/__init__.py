"""The alerting pipeline: metric reader + span processor -> windowed series store.

The store itself belongs to the composition root (:class:`paca_otel._runtime.Runtime`), which
hands it to each ``configure()``'s :class:`~paca_otel.pipeline._pipeline.Pipeline`, so the rules,
the API and the analysis see one set of series even when ``configure()`` is called again.
"""

from __future__ import annotations
