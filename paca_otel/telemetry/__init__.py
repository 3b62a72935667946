"""The building blocks of :func:`paca_otel.configure`, one concept per private module.

- :mod:`~paca_otel.telemetry._resource`: the OTel resource (service, instance, distro);
- :mod:`~paca_otel.telemetry._exporters`: the exporter plan and factory (built-in, OTLP over
  gRPC or HTTP, and the SDK's entry-point plug-ins);
- :mod:`~paca_otel.telemetry._providers`: the Tracer-, Meter- and LoggerProvider, their
  sampler, readers and processors, and installing them as the OTel globals;
- :mod:`~paca_otel.telemetry._scrape`: where the Prometheus exposition is served (a route on
  the app, or a standalone server);
- :mod:`~paca_otel.telemetry._reachability`: the start-up probe of the OTLP collectors and the
  filter that keeps exporter failures to one warning.

:mod:`paca_otel._setup` is the public facade (``configure``, ``get_telemetry``, ``Telemetry``)
that composes them.
"""
