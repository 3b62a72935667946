"""Open spans around application code: the ``@traced`` decorator and the ``span()`` block.

Both are thin over :meth:`opentelemetry.trace.Tracer.start_as_current_span`, which already
records an escaping exception as a span event and sets the span status to ERROR; on success the
status stays UNSET, as the OTel specification asks of instrumentation (a backend reads UNSET as
success). What this module adds is the default tracer: it is looked up lazily from the *current*
global provider, so code decorated at import time, before ``paca_otel.configure()`` ran, still
reports to the provider configured later, and to a new one if tests swap it.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast, overload

from opentelemetry import trace
from opentelemetry.trace import Span, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

__all__ = ["get_tracer", "span", "traced"]

_F = TypeVar("_F", bound=Callable[..., Any])

_INSTRUMENTATION_NAME = "paca_otel"

_cache_lock = threading.Lock()
_cached: tuple[TracerProvider, Tracer] | None = None


def get_tracer() -> Tracer:
    """Return the ``paca_otel`` tracer of the current global TracerProvider.

    Cached per provider object: asking the SDK provider for a tracer builds a new one each time,
    too costly per span, while caching forever would pin whichever provider was global first.
    """
    global _cached  # noqa: PLW0603 - a one-slot cache shared by every decorated function
    provider = trace.get_tracer_provider()
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    with _cache_lock:
        tracer = trace.get_tracer(_INSTRUMENTATION_NAME, tracer_provider=provider)
        _cached = (provider, tracer)
    return tracer


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """Run the ``with`` block inside a new current span called ``name``.

    An exception leaving the block is recorded on the span (an ``exception`` event) and sets
    its status to ERROR, then propagates unchanged.

    Args:
        name: The span name; keep it low-cardinality (no ids in it; put those in attributes).
        attributes: Attributes set when the span starts (so samplers can see them).
        tracer: The tracer to use instead of the global ``paca_otel`` one.

    Yields:
        The span, to add attributes or events to while the block runs.
    """
    active_tracer = tracer if tracer is not None else get_tracer()
    with active_tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


@overload
def traced(func: _F, /) -> _F: ...


@overload
def traced(
    name: str | None = None,
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    tracer: Tracer | None = None,
) -> Callable[[_F], _F]: ...


def traced(
    name: str | Callable[..., Any] | None = None,
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    tracer: Tracer | None = None,
) -> Any:
    """Decorate a sync or async function so each call runs in its own span.

    Usable bare (``@traced``) or configured (``@traced("load user", attributes={...})``).
    The span is named after the function's qualified name unless ``name`` is given, and
    carries ``code.function.name`` (module-qualified) next to ``attributes``. Exceptions are
    recorded and set ERROR status, as with :func:`span`.

    For an async function the span covers the awaited call, not just creating the coroutine.
    Generator functions are not supported: the span would end before the first item.

    Args:
        name: Span name, or the function itself when used bare.
        attributes: Attributes set on every span this decorator opens.
        tracer: The tracer to use instead of the global ``paca_otel`` one (looked up per call).
    """
    if callable(name):
        return _decorate(name, None, attributes, tracer)

    def decorator(func: _F) -> _F:
        return _decorate(func, name, attributes, tracer)

    return decorator


def _decorate(
    func: _F,
    name: str | None,
    attributes: Mapping[str, AttributeValue] | None,
    tracer: Tracer | None,
) -> _F:
    """Wrap ``func``; span name and attributes are computed once here, not per call."""
    qualname = str(getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func)))
    module: str | None = getattr(func, "__module__", None)
    span_name = name or qualname
    span_attributes: dict[str, AttributeValue] = {
        "code.function.name": f"{module}.{qualname}" if module else qualname,
    }
    if attributes:
        span_attributes.update(attributes)

    if inspect.iscoroutinefunction(func):
        async_func = cast("Callable[..., Awaitable[Any]]", func)

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            active = tracer if tracer is not None else get_tracer()
            with active.start_as_current_span(span_name, attributes=span_attributes):
                return await async_func(*args, **kwargs)

        return cast("_F", async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        active = tracer if tracer is not None else get_tracer()
        with active.start_as_current_span(span_name, attributes=span_attributes):
            return func(*args, **kwargs)

    return cast("_F", wrapper)
