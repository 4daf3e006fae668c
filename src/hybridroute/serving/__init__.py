"""HTTP serving for the edge and cloud tiers (the ``[serve]`` extra: fastapi, uvicorn, httpx, pydantic).

Modules:
    ``schemas``: the cloud tier's request, response and error bodies.
    ``cloud_app``: ``create_app(CloudSettings, classifier=None)``, the cloud tier's FastAPI app.
    ``cloud_client``: ``CloudClient`` (timeouts, retries, budget, circuit breaker) and ``InProcessCloud``.
    ``uvicorn_runner``: ``serve_in_thread(app)``, a uvicorn server on a background thread.
    ``edge_settings``, ``edge_schemas``, ``edge_app``, ``edge_service``: the edge tier's service.
    ``batcher``: ``MicroBatcher``, which groups concurrent requests into one model call.
    ``reload``: verified, atomic hot reload of the edge bundle.

Nothing is imported here, so importing one module does not pull in the others.
"""
