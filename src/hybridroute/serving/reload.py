"""Hot reload: swap a new edge bundle in without dropping a request.

The served classifier sits in a :class:`ModelHolder`. A reload loads the new
bundle on a worker thread, verifies it (manifest and checksums, an edge-tier
bundle (kind "edge" or "onnx_fp32"), the same label list as the model it replaces, a warm-up prediction),
builds a new :class:`~hybridroute.routing.cascade.HybridClassifier` that shares
the router, cloud client and ledger, and swaps the holder's reference in one
assignment. The micro-batcher reads that reference once per batch, so batches
already running finish on the old model and the next one runs on the new.
A bundle that fails any check is refused and the old model keeps serving.
The router loaded at startup keeps routing; when it was calibrated for another
model or temperature than the new one, the reload logs it and reports it
(:attr:`ReloadOutcome.warnings`), as startup does.

:class:`BundleWatcher` polls a bundle's ``manifest.json`` and reloads when it
changes. Write a new bundle beside the served one and rename it into place:
a reload that sees half-copied files fails its checksums and is retried on the
next change. A change made while the service was still loading is picked up
on the watcher's first check, and one that meets another reload (an admin's)
is retried on the next check.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hybridroute.errors import ArtifactError, HybridError
from hybridroute.hybrid import router_for, stale_router_message
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.router_config import RouterConfig
from hybridroute.runs import RunLayout
from hybridroute.runtime.bundle import MANIFEST_NAME, Manifest, read_manifest
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.edge_schemas import Conflict, InvalidBundle

logger = logging.getLogger(__name__)

Stamp = tuple[int, int]  # a manifest's (mtime in ns, size)


class ReloadBusy(Conflict):
    """Another reload holds the single reload slot (HTTP 409); the same reload may succeed once it ends."""


# The longest-input check builds a text of max_length words, at most this many (a model that takes longer
# inputs is not checked beyond it: building and running such a text would cost more than the check is worth).
LONGEST_CHECK_WORDS = 8192

# Manifest kinds of edge-tier models: the INT8 bundle (and variants) and the FP32 export it was quantized from.
# A run's cloud/ bundle has kind "cloud": serving it on the edge would route with a router calibrated for another model.
EDGE_KINDS = ("edge", "onnx_fp32")

WARMUP_TEXTS = ("where is my order", "thank you, that was quick!", "my card was charged twice and nobody answers")


@dataclass(frozen=True)
class ReloadOutcome:
    """What a successful reload did."""

    model_version: str
    previous_version: str
    bundle: Path
    seconds: float
    warnings: tuple[str, ...] = ()  # e.g. the router was calibrated for another model (see ServedRouter)


@dataclass(frozen=True)
class ServedRouter:
    """The calibrated router a service routes with, read at startup; a reload keeps it and checks new models against it.

    Attributes:
        config: the router (``router.json``, or the reference policy that overrides it).
        layout: the run it comes from (named in the warning).
    """

    config: RouterConfig
    layout: RunLayout

    @classmethod
    def of_run(cls, run: Path, policy: str | None = None) -> ServedRouter | None:
        """The router of ``run`` as startup loads it (``policy`` overrides it); None for a run without router.json.

        Raises:
            RoutingError: ``policy`` needs a calibration the run does not hold.
            ConfigError: router.json is malformed.
        """
        layout = RunLayout(Path(run))
        if not layout.router.is_file():
            return None
        return cls(router_for(layout, policy), layout)

    def staleness(self, edge: EdgeClassifier, bundle: Path) -> str | None:
        """Why this router does not fit ``edge`` (loaded from ``bundle``), or None when it does."""
        return stale_router_message(self.config, edge, self.layout, bundle)


class ModelHolder:
    """The hybrid classifier being served, replaced by one reference assignment."""

    def __init__(self, hybrid: HybridClassifier | None = None) -> None:
        self._hybrid = hybrid
        self._reloading = threading.Lock()

    @property
    def current(self) -> HybridClassifier | None:
        """The classifier to use now; read it once per batch."""
        return self._hybrid

    def set(self, hybrid: HybridClassifier | None) -> None:
        """Serve ``hybrid`` from the next batch on."""
        self._hybrid = hybrid

    def try_begin_reload(self) -> bool:
        """Claim the single reload slot; False when another reload is running."""
        return self._reloading.acquire(blocking=False)

    def end_reload(self) -> None:
        """Release the reload slot."""
        self._reloading.release()


def warm_up(edge: EdgeClassifier, rounds: int, batch_sizes: Sequence[int] = (1, 8)) -> None:
    """Run the edge model a few times so the first real requests do not pay for lazy initialisation."""
    for _ in range(rounds):
        for size in batch_sizes:
            edge.predict_proba([WARMUP_TEXTS[i % len(WARMUP_TEXTS)] for i in range(size)])


def check_longest_input(edge: object) -> None:
    """Run one text of the bundle's ``max_length`` tokens, so a bundle whose model cannot take them is refused.

    A manifest ``max_length`` above the model's position limit would otherwise fail every long request
    (and every request batched with one). A model built from parts without ``max_length`` is not checked.

    Raises:
        ArtifactError: the model fails on a text of ``max_length`` tokens.
    """
    max_length = getattr(edge, "max_length", None)
    predict = getattr(edge, "predict_proba", None)
    if not isinstance(max_length, int) or max_length < 1 or not callable(predict):
        return
    text = " ".join(["x"] * min(max_length, LONGEST_CHECK_WORDS))  # at least one token a word, truncated at max_length
    try:
        predict([text])
    except Exception as exc:  # ONNX Runtime raises its own types (e.g. "invalid expand shape")
        raise ArtifactError(
            f"the edge model fails on a text of max_length={max_length} tokens ({type(exc).__name__}: {exc}); "
            "set the bundle's max_length to at most the model's position limit (512 for BERT-style models)"
        ) from exc


def is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder; False, not an error, for names the OS refuses (too long, a NUL byte).

    Example: is_folder(Path("a" * 5000)) -> False (``Path.is_dir`` raises "File name too long")
    """
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


@contextmanager
def refused_as_invalid(bundle: Path) -> Iterator[None]:
    """Turn any failure of loading or running ``bundle`` into :class:`InvalidBundle` (the old model keeps serving)."""
    try:
        yield
    except (HybridError, OSError) as exc:  # OSError: a file the service may not read
        raise InvalidBundle(f"bundle {bundle} refused, the old model keeps serving: {exc}") from exc
    except Exception as exc:  # a malformed bundle can break the loader in any way: still a refusal, not a crash
        raise InvalidBundle(
            f"bundle {bundle} refused, the old model keeps serving: {type(exc).__name__}: {exc}"
        ) from exc


def check_edge_kind(edge: EdgeClassifier, bundle: Path) -> None:
    """Refuse a bundle whose manifest says it is not an edge-tier model (a run's cloud bundle, say).

    A model built from parts (no manifest) is not checked.

    Raises:
        InvalidBundle: the manifest's kind is not one of :data:`EDGE_KINDS`.
    """
    manifest = getattr(edge, "manifest", None)
    if isinstance(manifest, Manifest) and manifest.kind not in EDGE_KINDS:
        accepted = " or ".join(repr(kind) for kind in EDGE_KINDS)
        raise InvalidBundle(
            f"bundle {bundle} refused, the old model keeps serving: its manifest has kind {manifest.kind!r:.40}, "
            f"and the edge service serves only bundles of kind {accepted} (a run's edge/ or onnx_fp32/ folder)"
        )


def load_verified_edge(bundle: Path, labels: Sequence[str], threads: int = 0) -> EdgeClassifier:
    """Load a bundle and check it can replace a model with ``labels``.

    Raises:
        InvalidBundle: the folder is missing, is not a bundle, is not an edge-tier kind, fails its checksums or
            cannot predict.
        Conflict: the bundle's labels differ from the served ones (router and cloud expect those).
    """
    if not is_folder(bundle):
        raise InvalidBundle(f"bundle folder {bundle} does not exist; give a folder holding {MANIFEST_NAME}")
    with refused_as_invalid(bundle):
        edge = EdgeClassifier.from_dir(bundle, threads=threads)
    check_edge_kind(edge, bundle)  # before the warm-up: a cloud model is larger and slower
    with refused_as_invalid(bundle):
        warm_up(edge, rounds=1)
        check_longest_input(edge)
    if tuple(edge.labels) != tuple(labels):
        raise Conflict(
            f"bundle {bundle} has labels {list(edge.labels)[:8]} but the served model has {list(labels)[:8]}; "
            "a model with other labels needs a new router: restart the service on the new run instead"
        )
    return edge


def reload_edge(
    holder: ModelHolder,
    bundle: Path,
    threads: int = 0,
    clock: Callable[[], float] = time.perf_counter,
    *,
    router: ServedRouter | None = None,
) -> ReloadOutcome:
    """Load, verify and swap in a new edge bundle (blocking: call it on a worker thread).

    ``router``: the router being served; when it was calibrated for another model or temperature than the
    new bundle's, the swap still happens, and the outcome's ``warnings`` (and the log) say so.

    Raises:
        Conflict: another reload is running, no model is loaded yet, or the labels differ.
        InvalidBundle: the bundle failed verification.
    """
    if not holder.try_begin_reload():
        raise ReloadBusy("another reload is running; retry when it has finished")
    try:
        started = clock()
        current = holder.current
        if current is None:
            raise Conflict("no model is loaded yet; retry when GET /readyz answers 200")
        edge = load_verified_edge(bundle, current.edge.labels, threads)
        holder.set(dataclasses.replace(current, edge=edge))  # router, cloud and ledger carry over
        stale = router.staleness(edge, bundle) if router is not None else None
        warnings = (stale,) if stale is not None else ()
        outcome = ReloadOutcome(edge.model_version, current.edge.model_version, bundle, clock() - started, warnings)
        logger.info("edge model %s replaced %s (from %s)", outcome.model_version, outcome.previous_version, bundle)
        for warning in warnings:
            logger.warning("after the reload: %s", warning)
        return outcome
    finally:
        holder.end_reload()


def manifest_stamp(bundle: Path) -> Stamp | None:
    """(mtime in ns, size) of a bundle's manifest, or None when it is absent."""
    try:
        stat = (bundle / MANIFEST_NAME).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def serves_bundle(edge: object, bundle: Path) -> bool:
    """Whether ``bundle``'s manifest on disk is the one ``edge`` was loaded from.

    True when that cannot be told (a model built from parts has no manifest); False when the
    manifest on disk differs or cannot be read (a bundle being replaced).

    Example: serves_bundle(EdgeClassifier.from_dir(d), d) -> True, until a new bundle lands in ``d``
    """
    loaded = getattr(edge, "manifest", None)
    if not isinstance(loaded, Manifest):
        return True
    try:
        return read_manifest(bundle) == loaded
    except (HybridError, OSError):
        return False


class BundleWatcher:
    """Reload when a bundle's manifest changes (polled; no inotify dependency).

    Args:
        bundle: the folder to watch.
        reload: the app's reload coroutine (it records metrics and logs the outcome).
        interval_s: seconds between checks.
        seen: the manifest stamp of the bundle being served, taken before it was loaded (see
            :func:`manifest_stamp`); None when no manifest is known to be served, so the first check
            reloads whatever manifest is there. By default the manifest's stamp now.
    """

    def __init__(
        self,
        bundle: Path,
        reload: Callable[[], Awaitable[object]],
        interval_s: float = 2.0,
        *,
        seen: Stamp | None | Literal["now"] = "now",
    ) -> None:
        self.bundle, self.reload, self.interval_s = bundle, reload, interval_s
        self._seen = manifest_stamp(bundle) if seen == "now" else seen
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bundle-watcher")

    async def stop(self) -> None:
        """Stop polling (a reload already on its worker thread still completes)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # the watcher's own failure must not cut the service's shutdown short
                logger.exception("the bundle watcher of %s had failed", self.bundle)

    async def check_once(self) -> bool:
        """Reload if the manifest changed since last seen; True when a reload was tried.

        A bundle that is refused is tried again only after it changes again; a change that met
        another reload (:class:`ReloadBusy`) stays unseen, so the next check tries it again.
        """
        stamp = manifest_stamp(self.bundle)
        if stamp is None or stamp == self._seen:
            return False
        try:
            await self.reload()
        except ReloadBusy as exc:
            logger.info(
                "watched bundle %s changed during another reload; retrying on the next check (%s)", self.bundle, exc
            )
            return True
        except HybridError as exc:
            logger.warning("watched bundle %s changed but was refused: %s", self.bundle, exc)
        except Exception:  # a bug in a reload must not stop the watching: the next change is still tried
            logger.exception("watched bundle %s changed but its reload failed", self.bundle)
        self._seen = stamp  # the stamp from before the reload: a change made meanwhile is seen next time
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check_once()
