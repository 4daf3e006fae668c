"""The load benchmark's baseline: the edge model behind a plain FastAPI handler, without batching.

What a team would write first: one synchronous route that runs the model on the
one text it was sent. FastAPI runs it on its thread pool, so concurrent requests
make concurrent ONNX Runtime calls of one text each; there is no micro-batcher,
router, audit log or metrics. Only :mod:`hybridroute.bench.load` uses it (through
the hidden ``hybridroute bench plain-server`` command).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from hybridroute.runtime.classifier import EdgeClassifier


class PlainRequest(BaseModel):
    """One text, as the edge service takes it."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=10_000)


def get_classifier(request: Request) -> EdgeClassifier:
    """The app's model."""
    classifier: EdgeClassifier = request.app.state.classifier
    return classifier


def classify(body: PlainRequest, classifier: Annotated[EdgeClassifier, Depends(get_classifier)]) -> dict[str, Any]:
    """Run the model on the one text (a plain ``def``: FastAPI runs it on its thread pool)."""
    prediction = classifier.predict([body.text])[0]
    return {"results": [{"label": prediction.label, "confidence": prediction.confidence}]}


def readyz() -> dict[str, str]:
    """The model was loaded before the server started."""
    return {"status": "ready"}


def create_plain_app(classifier: EdgeClassifier) -> FastAPI:
    """The baseline app around a loaded classifier."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.classifier = classifier
        yield

    app = FastAPI(title="hybridroute plain baseline", lifespan=lifespan)
    app.add_api_route("/v1/classify", classify, methods=["POST"])
    app.add_api_route("/readyz", readyz, methods=["GET"])
    app.add_api_route("/healthz", readyz, methods=["GET"])
    return app
