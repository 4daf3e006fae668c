"""The one command-line entry point: ``hybridroute``.

Commands parse options, build a config, call one library function and print.
Heavy modules are imported inside commands so ``classify`` starts without torch.
Our errors become one clear line (``Error: ...``), never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from hybridroute.errors import ArtifactError, HybridError

F = TypeVar("F", bound=Callable[..., Any])


class HybridGroup(click.Group):
    """A click group that turns our errors (and a few system ones) into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, translating expected failures into ClickException."""
        try:
            return super().invoke(ctx)
        except HybridError as exc:
            raise click.ClickException(str(exc)) from exc
        except FileNotFoundError as exc:
            raise click.ClickException(f"file not found: {exc.filename}") from exc
        except BrokenPipeError:
            _quiet_broken_pipe()
        except OSError as exc:  # a path that is a directory, not writable, a full disk: the user's to fix
            raise click.ClickException(_os_error_message(exc)) from exc
        except KeyboardInterrupt as exc:
            raise click.ClickException("interrupted") from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: still one line, the traceback only with --verbose
            if ctx.params.get("verbose"):
                raise
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {exc} (a bug in hybridroute: rerun with -v for the traceback "
                "and report it)"
            ) from exc


def _os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: what failed and on which path.

    Example: IsADirectoryError(21, "Is a directory", "out") -> "Is a directory: out"
    """
    what = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else what


def _quiet_broken_pipe() -> NoReturn:
    """The reader of our output went away (``hybridroute ... | head``): exit as a killed pipe writer would.

    Python's documented recipe: point stdout at /dev/null so the interpreter's final flush cannot fail again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(128 + signal.SIGPIPE)


def _setup_logging(verbose: bool) -> None:
    # Libraries stay at WARNING (ONNX Runtime's quantizer logs every tensor at INFO on the root logger);
    # hybridroute's own progress is INFO, or DEBUG with --verbose.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else "%(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("hybridroute").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("transformers", "torch", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


@click.group(cls=HybridGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """hybridroute: edge-first hybrid inference for customer-service text."""
    _setup_logging(verbose)


# ---------------------------------------------------------------- shared options


def _stacked(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    """Apply ``options`` so that they show in ``--help`` in the order given."""

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def column_options() -> Callable[[F], F]:
    """--text-col and --label-col: where a CSV/JSONL file keeps its texts and labels."""
    return _stacked(
        [
            click.option("--text-col", default="text", show_default=True, help="Column holding the text."),
            click.option("--label-col", default="label", show_default=True, help="Column holding the label."),
        ]
    )


def data_options(required: bool) -> Callable[[F], F]:
    """--data, --text-col, --label-col, --strict, --val-fraction, --seed."""
    return _stacked(
        [
            click.option(
                "--data", type=click.Path(path_type=Path), required=required, help="Labelled CSV or JSONL file."
            ),
            column_options(),
            click.option("--strict", is_flag=True, help="Blank texts are an error instead of being dropped."),
            click.option(
                "--val-fraction",
                type=float,
                default=0.1,
                show_default=True,
                help="Share of each class held out for validation.",
            ),
            click.option(
                "--seed",
                type=click.IntRange(min=0),
                default=None,
                help=f"Seed for the split and training [default: {DEFAULT_SEED}; train: else the --config file's].",
            ),
        ]
    )


def batch_options() -> Callable[[F], F]:
    """--batch-size and --max-length of a training job."""
    return _stacked(
        [
            click.option("--batch-size", type=int, default=32, show_default=True, help="Texts per training step."),
            click.option(
                "--max-length",
                type=int,
                default=64,
                show_default=True,
                help="Tokens per text; longer texts are truncated.",
            ),
        ]
    )


def listen_options(port: int) -> Callable[[F], F]:
    """--host and --port a server listens on."""
    return _stacked(
        [
            click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on."),
            click.option(
                "--port", type=click.IntRange(0, 65535), default=port, show_default=True, help="Port to listen on."
            ),
        ]
    )


def distill_weight_option(default: float, help_text: str) -> Callable[[F], F]:
    """--distill-weight: the share of the loss that matches a teacher's softened distribution."""
    return click.option(
        "--distill-weight", type=click.FloatRange(0.0, 1.0), default=default, show_default=True, help=help_text
    )


def teacher_option(help_text: str) -> Callable[[F], F]:
    """--teacher: a bundle folder whose logits a student is distilled towards."""
    return click.option(
        "--teacher", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help=help_text
    )


THREADS_HELP = "ONNX Runtime intra-op threads (0: its default, one per core)."
DEFAULT_SEED = 13  # split and training seed when --seed is not given
AUTO_MAX_DROP = 0.005  # compress --auto: half a point of validation accuracy against ONNX FP32
DEFAULT_CLOUD_BUDGET = 0.05  # calibrate: at most 5% of new traffic to the cloud
DEFAULT_SHARE_CONFIDENCE = 0.9  # ...with this probability (router_config.BUDGET_CONFIDENCE; a test keeps them equal)


# --NAME FILE options: a JSON object of a typed config's fields (subject, example, what keys left out keep).
JSON_FILE_OPTIONS = {
    "thresholds": (
        "alert limits for {what}",
        '{"min_edge_share": 0.9, "critical_edge_share": 0.8, "max_p95_latency_ms": 50}',
        "their defaults (README: Monitoring thresholds)",
    ),
    "prices": (
        "what each tier costs in USD, for {what}",
        '{"edge_per_query": 0.0005, "cloud_per_query": 0.02}',
        "the tutorial's prices (README: Prices)",
    ),
}


def _json_file_option(name: str, what: str) -> Callable[[F], F]:
    """``--NAME FILE`` (passed as ``NAME_file``), described by :data:`JSON_FILE_OPTIONS`."""
    subject, example, defaults = JSON_FILE_OPTIONS[name]
    return click.option(
        f"--{name}",
        f"{name}_file",
        type=click.Path(path_type=Path),
        default=None,
        help=f"JSON object of {subject.format(what=what)}, e.g. {example}; keys not given keep {defaults}.",
    )


def threads_option(help_text: str = THREADS_HELP) -> Callable[[F], F]:
    """--threads: ONNX Runtime intra-op threads."""
    return click.option("--threads", type=click.IntRange(0, 1024), default=0, show_default=True, help=help_text)


def limit_option() -> Callable[[F], F]:
    """--limit: evaluate on the first N test rows only."""
    return click.option(
        "--limit",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Only the first N test rows (0 = all).",
    )


def check_base_model(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Refuse a base model that cannot be found before any work starts."""
    if value is not None:
        from hybridroute.training.models import resolve_base_model

        try:
            resolve_base_model(value)
        except HybridError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


def max_batch_option(default: int, help_text: str) -> Callable[[F], F]:
    """--max-batch: the most texts a service handles at once."""
    return click.option("--max-batch", type=click.IntRange(1, 4096), default=default, show_default=True, help=help_text)


def max_body_bytes_option(derived_from: str) -> Callable[[F], F]:
    """--max-body-bytes: the most bytes a classify body may hold; by default derived from the text limits."""
    return click.option(
        "--max-body-bytes",
        type=click.IntRange(1, 2**40),
        default=None,
        help=(
            f"Most bytes in a classify body, 413 beyond [default: derived: room for {derived_from}, "
            "each character counted as 12 bytes (an emoji escaped as \\ud83d\\ude00); 7681280 at the defaults]."
        ),
    )


def max_drop_option() -> Callable[[F], F]:
    """--max-accuracy-drop: the INT8 gate's allowance against the FP32 model on validation."""
    return click.option(
        "--max-accuracy-drop",
        type=click.FloatRange(0.0, 1.0),
        default=0.01,
        show_default=True,
        help="Largest validation accuracy loss INT8 may have (0.01 = 1 point).",
    )


def _data_config(data: Path, text_col: str, label_col: str, strict: bool, val_fraction: float, seed: int | None) -> Any:
    from hybridroute.config import DataConfig

    return DataConfig(data, text_col, label_col, strict, val_fraction, _seed(seed))


def _given(name: str) -> bool:
    """Whether the option ``name`` was typed on the command line (not its default)."""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source(name) is ParameterSource.COMMANDLINE


def _refuse_split_options_without_data() -> None:
    """Without --data the run's stored split is used: options that describe a new split would be ignored."""
    names = ("text_col", "label_col", "strict", "val_fraction")
    given = [f"--{n.replace('_', '-')}" for n in names if _given(n)]
    if given:
        message = f"{', '.join(given)}: these describe how to split --data; without --data the stored split is used"
        raise click.BadParameter(message, param_hint="--data")


def _seed(given: int | None) -> int:
    return DEFAULT_SEED if given is None else given


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _layout(out: Path) -> Any:
    from hybridroute.runs import RunLayout

    return RunLayout.open(out)


def interruptible(command: F) -> F:
    """Let SIGTERM stop ``command`` as Ctrl-C does: "Error: interrupted", and its clean-up runs.

    Without it SIGTERM (``kill``, a container stopping) ends a long training job silently, mid-write.
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from hybridroute.bench.interrupt import sigterm_interrupts

        with sigterm_interrupts():
            return command(*args, **kwargs)

    return run  # type: ignore[return-value]


def _refuse_given(names: Sequence[str], why: str) -> None:
    """Refuse the options among ``names`` that were typed: ``why`` says what they need (else they are ignored).

    Example: _refuse_given(["distill_weight"], "only used with --teacher; give it or leave this out")
    -> BadParameter "Invalid value for --distill-weight: only used with --teacher; give it or leave this out"
    """
    given = [f"--{name.replace('_', '-')}" for name in names if _given(name)]
    if given:
        raise click.BadParameter(why, param_hint=", ".join(given))


def _check_outputs(outputs: Mapping[str, Path | None], inputs: Mapping[str, Path | None]) -> None:
    """Before any work, refuse each output (option -> path) that cannot be written or is an input or another output.

    Example: _check_outputs({"--json": Path("t.csv")}, {"the test file given with --test": Path("t.csv")})
    -> ConfigError "--json t.csv is the test file given with --test; choose another file"
    """
    from hybridroute.files import check_output_path

    known = dict(inputs)
    for option, path in outputs.items():
        if path is not None:
            check_output_path(path, option, known)
            known[f"the output of {option}"] = path


def _check_texts(texts: Sequence[str]) -> None:
    r"""Refuse a blank text, or one holding bytes that are not UTF-8 (Python passes them on as lone surrogates).

    Example: _check_texts(["ok", "\udcff"]) -> BadParameter "text 2 is not UTF-8 text (byte 0xFF at character 1) ..."
    """
    from hybridroute.data import is_blank

    for number, text in enumerate(texts, start=1):
        if is_blank(text):
            raise click.BadParameter(f"text {number} is blank; give non-empty texts", param_hint="TEXTS")
        where = next((i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff"), None)
        if where is not None:
            code = ord(text[where])
            what = f"byte 0x{code - 0xDC00:02X}" if 0xDC80 <= code <= 0xDCFF else f"a lone surrogate U+{code:04X}"
            raise click.BadParameter(
                f"text {number} is not UTF-8 text ({what} at character {where + 1}); give texts in UTF-8",
                param_hint="TEXTS",
            )


# ---------------------------------------------------------------- training


@main.command()
@data_options(required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder to create or update.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="JSON file with sections adapt/finetune/compress overriding defaults.",
)
@click.option(
    "--base-model",
    default=None,
    callback=check_base_model,
    help="Base encoder: 'minilm', 'mpnet' or a model folder [default: minilm; with --tier cloud: mpnet].",
)
@click.option("--corpus", type=click.Path(path_type=Path), help="Unlabelled domain text (.txt/.csv/.jsonl).")
@click.option(
    "--corpus-text-col", default="text", show_default=True, help="Column holding the text in a CSV/JSONL --corpus."
)
@click.option("--no-adapt", is_flag=True, help="Skip masked-LM domain adaptation.")
@click.option("--epochs", type=int, default=None, help="Maximum full fine-tuning epochs.")
@click.option("--adapt-epochs", type=float, default=None, help="Masked-LM epochs.")
@click.option(
    "--tier",
    type=click.Choice(["edge", "cloud"]),
    default="edge",
    show_default=True,
    help="edge: the full edge pipeline; cloud: add a cloud-tier bundle to a run (on its stored split, if any).",
)
@interruptible
def train(
    out: Path,
    config_file: Path | None,
    base_model: str | None,
    corpus: Path | None,
    corpus_text_col: str,
    no_adapt: bool,
    epochs: int | None,
    adapt_epochs: float | None,
    tier: str,
    **data: Any,
) -> None:
    """Adapt, fine-tune, export and quantize into one run folder (or add the cloud tier)."""
    overrides: dict[str, dict[str, Any]] = {
        "adapt": {"base_model": base_model, "epochs": adapt_epochs, "seed": data["seed"]},
        "finetune": {"epochs": epochs, "seed": data["seed"]},
    }
    if tier == "cloud":
        edge_only = {"--corpus": corpus is not None, "--no-adapt": no_adapt, "--adapt-epochs": adapt_epochs is not None}
        edge_only["--corpus-text-col"] = _given("corpus_text_col")
        if any(edge_only.values()):
            given = ", ".join(name for name, used in edge_only.items() if used)
            raise click.BadParameter(f"{given}: the cloud tier is not adapted; drop it", param_hint="--tier cloud")
        _train_cloud(out, config_file, base_model or "mpnet", overrides["finetune"], _data_config(**data))
        return
    from hybridroute.workflow import TrainPlan, train_all

    if no_adapt:
        why = "only used by the adaptation step, which --no-adapt skips; leave it out or drop --no-adapt"
        _refuse_given(["corpus", "corpus_text_col", "adapt_epochs"], why)
    _check_corpus_text_col(corpus)
    from hybridroute.config import train_sections

    sections = _train_config_file(config_file, unused_adapt="--no-adapt skips adaptation" if no_adapt else None)
    adapt, finetune, compress = train_sections(sections, overrides)
    plan = TrainPlan(_data_config(**data), adapt, finetune, compress, corpus, no_adapt, corpus_text_col)
    click.echo(summarize_run(train_all(_layout(out), plan)))


def _check_corpus_text_col(corpus: Path | None) -> None:
    """--corpus-text-col names a column of --corpus: without --corpus it would be ignored."""
    if corpus is None:
        _refuse_given(
            ["corpus_text_col"],
            "it names the text column of --corpus; give --corpus FILE (without it the training texts are used)",
        )


def _train_config_file(config_file: Path | None, unused_adapt: str | None) -> dict[str, Any]:
    """The --config file's sections ({} without one); ``unused_adapt`` says why an adapt section will not be used.

    Example: _train_config_file(Path("c.json"), "--no-adapt skips adaptation") with an adapt section in c.json
    -> prints "note: --no-adapt skips adaptation; the config file's adapt section is not used" (still checked)
    """
    from hybridroute.config import load_json_config

    sections = load_json_config(config_file) if config_file else {}
    if unused_adapt and "adapt" in sections:
        click.echo(f"note: {unused_adapt}; the config file's adapt section is not used")
    return sections


def _train_cloud(out: Path, config_file: Path | None, base_model: str, flags: dict[str, Any], data: Any) -> None:
    """The cloud tier: its own fine-tuning defaults, then the --config file's finetune section, then the flags."""
    from hybridroute.config import train_sections
    from hybridroute.workflow import SPLIT_SETTINGS, cloud_finetune_defaults, reuse_or_prepare_data, run_cloud

    sections = _train_config_file(config_file, unused_adapt="the cloud tier has no adaptation step")
    # every section is checked; compress applies to the cloud bundle's export and parity check
    _, config, compress = train_sections(sections, {"finetune": flags}, {"finetune": cloud_finetune_defaults()})
    layout = _layout(out)
    reuse_or_prepare_data(layout, data, [name for name in SPLIT_SETTINGS if _given(name)])
    result = run_cloud(layout, config, base_model, compress=compress)
    click.echo(
        f"cloud tier: validation accuracy {result.val_accuracy:.4f} ({result.seconds / 60:.1f} min); "
        f"bundle {layout.cloud}"
    )


@main.command()
@data_options(required=False)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option("--base-model", default="minilm", show_default=True, callback=check_base_model, help="Encoder to adapt.")
@click.option(
    "--corpus",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Unlabelled domain text (.txt/.csv/.jsonl).",
)
@click.option(
    "--corpus-text-col", default="text", show_default=True, help="Column holding the text in a CSV/JSONL --corpus."
)
@click.option("--epochs", type=float, default=1.0, show_default=True, help="Masked-LM passes over the corpus.")
@click.option("--mlm-probability", type=float, default=0.15, show_default=True, help="Share of tokens masked.")
@batch_options()
@interruptible
def adapt(
    out: Path,
    base_model: str,
    corpus: Path | None,
    corpus_text_col: str,
    epochs: float,
    max_length: int,
    mlm_probability: float,
    batch_size: int,
    **data: Any,
) -> None:
    """Domain-adaptive masked-LM pretraining into RUN/adapted."""
    from hybridroute.config import AdaptConfig
    from hybridroute.workflow import prepare_data, run_adapt

    config = AdaptConfig(base_model, epochs, max_length, mlm_probability, batch_size, seed=_seed(data["seed"]))
    _check_corpus_text_col(corpus)
    layout = _layout(out)
    if data["data"] is not None:
        prepare_data(layout, _data_config(**data))
    else:
        _refuse_split_options_without_data()
    result = run_adapt(layout, config, corpus, corpus_text_col=corpus_text_col)
    click.echo(
        f"MLM held-out loss {result.loss_before:.4f} -> {result.loss_after:.4f} "
        f"({result.train_texts} texts, {result.steps} steps, {result.seconds:.0f}s); saved {result.out_dir}"
    )


@main.command()
@data_options(required=False)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option(
    "--encoder",
    default=None,
    callback=check_base_model,
    help="Encoder to fine-tune (default: RUN/adapted, else the base model).",
)
@click.option("--epochs", type=int, default=5, show_default=True, help="Maximum full fine-tuning epochs.")
@click.option("--head-epochs", type=int, default=10, show_default=True, help="Frozen-encoder head warm-up epochs.")
@click.option(
    "--learning-rate", type=float, default=1e-4, show_default=True, help="Peak learning rate of full fine-tuning."
)
@batch_options()
@click.option(
    "--patience", type=int, default=2, show_default=True, help="Epochs without a validation gain before stopping."
)
@teacher_option("Bundle folder to distill from, e.g. RUN/cloud (knowledge distillation).")
@distill_weight_option(0.5, "With --teacher: share of the loss that matches the teacher.")
@click.option(
    "--distill-temperature", type=float, default=2.0, show_default=True, help="With --teacher: softening temperature."
)
@click.option(
    "--augment",
    type=click.IntRange(0, 10),
    default=0,
    show_default=True,
    help="With --teacher: perturbed copies of each training text (words dropped and swapped) the teacher labels.",
)
@interruptible
def finetune(
    out: Path,
    encoder: str | None,
    epochs: int,
    head_epochs: int,
    learning_rate: float,
    batch_size: int,
    max_length: int,
    patience: int,
    teacher: Path | None,
    distill_weight: float,
    distill_temperature: float,
    augment: int,
    **data: Any,
) -> None:
    """Two-stage fine-tuning into RUN/classifier (optionally distilled from a teacher bundle)."""
    from hybridroute.config import FinetuneConfig
    from hybridroute.workflow import prepare_data, run_finetune

    if augment and teacher is None:
        raise click.BadParameter(f"{augment} copies need --teacher, which labels them", param_hint="--augment")
    if teacher is None:
        why = "only used with --teacher (the teacher's share and softening of the loss); give --teacher or leave it out"
        _refuse_given(["distill_weight", "distill_temperature"], why)
    config = FinetuneConfig(
        head_epochs=head_epochs,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_length=max_length,
        patience=patience,
        seed=_seed(data["seed"]),
        distill_weight=distill_weight,
        distill_temperature=distill_temperature,
        augment_copies=augment,
    )
    layout = _layout(out)
    if data["data"] is not None:
        prepare_data(layout, _data_config(**data))
    else:
        _refuse_split_options_without_data()
    result = run_finetune(layout, config, encoder, teacher=teacher)
    click.echo(
        f"validation accuracy {result.val_accuracy:.4f} (best epoch {result.best_epoch}, "
        f"{result.seconds:.0f}s); saved {result.out_dir}"
    )


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder.")
@max_drop_option()
@click.option("--no-per-channel", is_flag=True, help="Per-tensor instead of per-channel weight scales.")
@click.option("--keep-fp32-embeddings", is_flag=True, help="Do not quantize the embedding tables.")
@click.option(
    "--no-smoothing", is_flag=True, help="Quantize the export as it is, without smoothing activation outliers first."
)
@click.option(
    "--auto", is_flag=True, help="Then build every compression variant and install the smallest within --auto-max-drop."
)
@click.option(
    "--auto-max-drop",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help=f"With --auto: largest validation accuracy loss against ONNX FP32 [default: {AUTO_MAX_DROP}, half a point].",
)
@click.option("--variants", "variant_names", default="", help="With --auto: comma-separated variant names.")
@click.option(
    "--prefer",
    type=click.Choice(["size", "speed"]),
    default="size",
    show_default=True,
    help="With --auto: install the smallest qualifying variant, or the fastest for single queries "
    "(p95 on validation texts, one thread).",
)
@interruptible
def compress(
    run_dir: Path,
    max_accuracy_drop: float,
    no_per_channel: bool,
    keep_fp32_embeddings: bool,
    no_smoothing: bool,
    auto: bool,
    auto_max_drop: float | None,
    variant_names: str,
    prefer: str,
) -> None:
    """Export to ONNX, check parity, quantize to INT8 and gate into RUN/edge (--auto: smallest variant)."""
    from hybridroute.compression.variants import variants_by_name
    from hybridroute.config import CompressConfig
    from hybridroute.workflow import run_compress

    names = [n.strip() for n in variant_names.split(",") if n.strip()]
    if names and not auto:
        message = "variant names only apply with --auto; add --auto or drop them"
        raise click.BadParameter(message, param_hint="--variants")
    if prefer != "size" and not auto:
        raise click.BadParameter("--prefer chooses among --auto's variants; add --auto", param_hint="--prefer")
    if auto_max_drop is not None and not auto:
        raise click.BadParameter("the allowance applies to --auto's variants; add --auto", param_hint="--auto-max-drop")
    if auto:
        variants_by_name(names, _layout(run_dir).students())  # unknown names fail now, not after the export
    config = CompressConfig(
        max_accuracy_drop=max_accuracy_drop,
        per_channel=not no_per_channel,
        quantize_embeddings=not keep_fp32_embeddings,
        smoothing=not no_smoothing,
    )
    report = run_compress(_layout(run_dir), config)
    click.echo(
        f"edge bundle {report.edge_dir}: {report.fp32_mb:.1f} MB -> {report.int8_mb:.1f} MB "
        f"(-{report.size_reduction_pct:.1f}%), validation accuracy {report.fp32_accuracy:.4f} -> "
        f"{report.int8_accuracy:.4f}"
    )
    if auto:
        from hybridroute.compression.selection import auto_compress

        chosen, _ = auto_compress(
            _layout(run_dir),
            names,
            AUTO_MAX_DROP if auto_max_drop is None else auto_max_drop,
            progress=click.echo,
            prefer=prefer,
        )
        click.echo(
            f"edge bundle {report.edge_dir}: {chosen.variant.name}, {chosen.size_mb:.2f} MB "
            f"(-{100 * (1 - chosen.size_mb / report.fp32_mb):.1f}% vs FP32), "
            f"validation accuracy {chosen.accuracy:.4f}"
        )


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Trained run folder.")
@click.option(
    "--layers",
    type=click.IntRange(min=1),
    required=True,
    help="Transformer layers the student keeps (from the bottom).",
)
@click.option("--epochs", type=click.IntRange(min=0), default=4, show_default=True, help="Full distillation epochs.")
@click.option(
    "--head-epochs",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Frozen-encoder head warm-up epochs.",
)
@click.option(
    "--learning-rate", type=float, default=1e-4, show_default=True, help="Peak learning rate of full distillation."
)
@teacher_option("Bundle folder to distill from (default: RUN/onnx_fp32, the full model; RUN/cloud also works).")
@distill_weight_option(0.7, "Share of the loss that matches the teacher.")
@max_drop_option()
@click.option("--seed", type=click.IntRange(min=0), default=13, show_default=True, help="Seed for training.")
@interruptible
def shrink(
    run_dir: Path,
    layers: int,
    epochs: int,
    head_epochs: int,
    learning_rate: float,
    teacher: Path | None,
    distill_weight: float,
    max_accuracy_drop: float,
    seed: int,
) -> None:
    """Distill a shallower student (the first N layers) from RUN into RUN/students/L<N>, then compress it."""
    from dataclasses import replace

    from hybridroute.config import CompressConfig
    from hybridroute.workflow import run_shrink, shrink_defaults

    config = replace(
        shrink_defaults(layers),
        epochs=epochs,
        head_epochs=head_epochs,
        learning_rate=learning_rate,
        distill_weight=distill_weight,
        seed=seed,
    )
    gate = CompressConfig(max_accuracy_drop=max_accuracy_drop)
    student, result, report = run_shrink(_layout(run_dir), config, teacher, gate)
    click.echo(
        f"student {student.root}: {layers} layers, validation accuracy {result.val_accuracy:.4f} "
        f"(best epoch {result.best_epoch}, {result.seconds:.0f}s); INT8 {report.int8_mb:.1f} MB, "
        f"validation accuracy {report.int8_accuracy:.4f}. Variants named L{layers}-... now build from it."
    )


# ---------------------------------------------------------------- inference


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder or edge bundle.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON with all probabilities.")
@click.argument("texts", nargs=-1, required=True)
def classify(run_dir: Path, as_json: bool, texts: tuple[str, ...]) -> None:
    """Classify TEXTS with the edge bundle (no torch needed)."""
    from hybridroute.runtime import EdgeClassifier

    _check_texts(texts)
    layout = _layout(run_dir)  # opening the run puts back an edge bundle a crashed install left aside
    edge = layout.edge
    if not edge.is_dir() and layout.info_file.is_file():  # a run folder whose edge bundle is not built yet
        layout.require(edge, "train")
    predictions = EdgeClassifier.from_dir(edge if edge.is_dir() else run_dir).predict(list(texts))
    if as_json:
        _echo_json([{"text": t} | p.to_dict() for t, p in zip(texts, predictions, strict=True)])
        return
    for text, prediction in zip(texts, predictions, strict=True):
        click.echo(f"{prediction.label}\t{prediction.confidence:.3f}\t{text}")


# ---------------------------------------------------------------- routing


def _target(
    cloud_share: float | None, max_cloud_share: float | None, accuracy: float | None, share_confidence: float
) -> dict[str, float]:
    options = (("--cloud-share", cloud_share), ("--max-cloud-share", max_cloud_share), ("--target-accuracy", accuracy))
    given = [name for name, value in options if value is not None]
    if len(given) > 1:
        raise click.BadParameter(f"give one of --cloud-share, --max-cloud-share, --target-accuracy; got {given}")
    if cloud_share is not None or accuracy is not None:
        why = f"only used with --max-cloud-share (how surely traffic keeps in its budget); {given[0]} sets none"
        _refuse_given(["share_confidence"], why + "; leave it out")
    if accuracy is not None:
        return {"accuracy": accuracy}
    if cloud_share is not None:
        return {"cloud_share": cloud_share}
    budget = DEFAULT_CLOUD_BUDGET if max_cloud_share is None else max_cloud_share
    return {"max_cloud_share": budget, "confidence": share_confidence}


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option(
    "--policy",
    type=click.Choice(["confidence", "learned", "random"]),
    default="confidence",
    show_default=True,
    help="Policy whose threshold is calibrated.",
)
@click.option(
    "--max-cloud-share",
    type=float,
    default=None,
    help=f"Cloud budget: new traffic escalates at most this share, with probability --share-confidence "
    f"(validation escalates somewhat less) [default: {DEFAULT_CLOUD_BUDGET}].",
)
@click.option(
    "--share-confidence",
    type=click.FloatRange(0.5, 0.999),
    default=DEFAULT_SHARE_CONFIDENCE,
    show_default=True,
    help="With --max-cloud-share: probability that new traffic stays within the budget.",
)
@click.option("--cloud-share", type=float, default=None, help="Escalate exactly this share of validation instead.")
@click.option("--target-accuracy", type=float, default=None, help="Target hybrid accuracy instead of a share.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed for the random policy and the learned policy's fit/threshold split.",
)
def calibrate(
    run_dir: Path,
    policy: str,
    max_cloud_share: float | None,
    share_confidence: float,
    cloud_share: float | None,
    target_accuracy: float | None,
    seed: int,
) -> None:
    """Calibrate the router on the validation split and save RUN/router.json."""
    from hybridroute.workflow import run_calibrate

    target = _target(cloud_share, max_cloud_share, target_accuracy, share_confidence)
    router = run_calibrate(_layout(run_dir), policy, target, seed)
    click.echo(f"router: {router.policy}, threshold {router.threshold:.4f}; {_describe_validation(router.metrics)}")


def _describe_validation(metrics: Any) -> str:
    """One line of the calibrated router's validation figures."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    return (
        f"on {metrics.n} validation texts: edge-only {pct(metrics.edge_accuracy)}, "
        f"cloud share {pct(metrics.expected_cloud_share)}, hybrid {pct(metrics.expected_hybrid_accuracy)}, "
        f"cloud-only {pct(metrics.cloud_accuracy)}"
    )


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder.")
@click.option("--cloud-url", default=None, help="Cloud service URL; default: the run's cloud bundle in process.")
@click.option("--policy", default=None, help="Override the calibrated policy (always-edge, always-cloud, tutorial).")
@_json_file_option("prices", "each answer's cost")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("texts", nargs=-1, required=True)
def route(
    run_dir: Path,
    cloud_url: str | None,
    policy: str | None,
    prices_file: Path | None,
    as_json: bool,
    texts: tuple[str, ...],
) -> None:
    """Answer TEXTS edge-first, escalating hard ones to the cloud tier."""
    from hybridroute.config import config_from_file
    from hybridroute.hybrid import HybridSettings, open_hybrid
    from hybridroute.routing.ledger import PriceConfig

    _check_texts(texts)
    prices = config_from_file(PriceConfig, prices_file)  # before the models load: a bad file fails at once
    hybrid = open_hybrid(HybridSettings(run_dir, cloud_url, policy, prices))
    answers = hybrid.classify(list(texts))
    if as_json:
        _echo_json([{"text": t} | a.to_dict() for t, a in zip(texts, answers, strict=True)])
        return
    for text, answer in zip(texts, answers, strict=True):
        click.echo(
            f"{answer.label}\t{answer.confidence:.3f}\t{answer.tier.value}\t{answer.reason}\t"
            f"{answer.latency_ms:.1f} ms\t${answer.cost:.5f}\t{text}"
        )


@main.group(cls=HybridGroup)
def serve() -> None:
    """Run the HTTP services."""


@serve.command("cloud")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder or cloud bundle.")
@listen_options(8001)
@max_batch_option(64, "Most texts one request may carry; more are refused with 413.")
@max_body_bytes_option("--max-batch texts of 10000 characters")
@threads_option()
def serve_cloud(run_dir: Path, host: str, port: int, max_batch: int, max_body_bytes: int | None, threads: int) -> None:
    """Serve the cloud-tier model: POST /v1/classify, /healthz, /readyz."""
    from hybridroute.serving.cloud_app import CloudSettings, create_app, load_classifier
    from hybridroute.serving.uvicorn_runner import freeze_startup_heap, listen, serve_foreground

    bundle = run_dir / "cloud" if (run_dir / "cloud").is_dir() else run_dir
    if not (bundle / "manifest.json").is_file() and (run_dir / "edge").is_dir():  # a run without its cloud tier
        raise ArtifactError(
            f"{run_dir} has no cloud tier ({run_dir / 'cloud'} is missing): run "
            f"`hybridroute train --tier cloud --data FILE --out {run_dir}` first, or pass a cloud bundle folder"
        )
    settings = CloudSettings(bundle=bundle, max_batch=max_batch, threads=threads, max_body_bytes=max_body_bytes)
    with contextlib.closing(listen(host, port)) as sock:  # a port in use fails at once, before the model loads
        app = create_app(settings, load_classifier(settings))
        freeze_startup_heap()
        serve_foreground(app, sock, log_level="info")


@serve.command("edge")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder.")
@listen_options(8000)
@click.option("--cloud-url", default=None, help="Cloud service URL; default: the run's cloud bundle in process.")
@click.option("--policy", default=None, help="Override the calibrated policy (always-edge, always-cloud, tutorial).")
@max_batch_option(32, "Most texts per model call: concurrent requests are micro-batched up to it.")
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(0.0, 1000.0),
    default=2.0,
    show_default=True,
    help="Longest wait to fill a batch.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Model batches at once (use with --threads 1 per core).",
)
@click.option(
    "--max-chars",
    type=click.IntRange(1, 10_000_000),
    default=10_000,
    show_default=True,
    help="Most characters per text (413).",
)
@click.option(
    "--max-texts", type=click.IntRange(1, 4096), default=64, show_default=True, help="Most texts per request (413)."
)
@max_body_bytes_option("--max-texts texts of --max-chars characters")
@click.option(
    "--audit-db", default=None, help="Audit path, sqlite:///PATH or postgresql://URL [default: RUN/audit.sqlite]."
)
@click.option(
    "--audit-queue",
    type=click.IntRange(1, 10_000_000),
    default=10_000,
    show_default=True,
    help="Most audit records waiting to be written; more are dropped and counted (hybridroute_audit_dropped_total).",
)
@click.option(
    "--audit-ack-timeout",
    "audit_ack_timeout_s",
    type=click.FloatRange(0.0, 60.0),
    default=1.0,
    show_default=True,
    help="Longest an answer waits for its audit commit, s (X-Audit: committed; past it: pending). "
    "0: answers never wait (X-Audit: queued), and a crash can lose the records of answered requests.",
)
@click.option("--store-raw-text", is_flag=True, help="Keep raw texts in the audit log (default: salted hashes only).")
@click.option("--admin-token", envvar="HYBRIDROUTE_ADMIN_TOKEN", default=None, help="Enables POST /admin/reload.")
@click.option("--watch", is_flag=True, help="Reload when RUN/edge/manifest.json changes.")
@threads_option()
@click.option(
    "--monitor-window",
    type=click.IntRange(1, 10_000_000),
    default=1000,
    show_default=True,
    help="Answers per window of the live monitor (GET /v1/monitor); it keeps 8 windows in memory.",
)
@_json_file_option("thresholds", "the live monitor (GET /v1/monitor, the hybridroute_monitor_* gauges)")
@_json_file_option("prices", "every answer's cost and the live monitor's cloud-only comparison")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="Log every HTTP request.")
def serve_edge(
    run_dir: Path,
    host: str,
    port: int,
    access_log: bool,
    monitor_window: int,
    thresholds_file: Path | None,
    prices_file: Path | None,
    **options: Any,
) -> None:
    """Serve edge-first answers over HTTP.

    POST /v1/classify, /v1/feedback, /admin/reload; GET /healthz, /readyz, /metrics, /v1/monitor.
    """
    from hybridroute.config import config_from_file
    from hybridroute.monitoring.thresholds import MonitorConfig, MonitorThresholds
    from hybridroute.routing.ledger import PriceConfig
    from hybridroute.serving.edge_app import create_app
    from hybridroute.serving.edge_service import open_edge_audit, open_hybrid_for
    from hybridroute.serving.edge_settings import EdgeSettings
    from hybridroute.serving.uvicorn_runner import freeze_startup_heap, listen, serve_foreground

    prices = config_from_file(PriceConfig, prices_file)
    settings = EdgeSettings(
        run_dir,
        prices=prices,
        monitor_thresholds=config_from_file(MonitorThresholds, thresholds_file),
        monitor_config=MonitorConfig(window_size=monitor_window, cloud_price=prices.cloud_per_query),
        **options,
    )
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(contextlib.closing(listen(host, port)))  # a port in use fails before loading
        hybrid = open_hybrid_for(settings)  # a bad run fails before serving
        store = open_edge_audit(settings)  # and so does a bad --audit-db, with one line
        stack.callback(store.close)
        app = create_app(settings, hybrid, audit=store)
        freeze_startup_heap()
        # The graceful timeout lets requests in flight finish (and their audit records commit) on SIGTERM.
        serve_foreground(app, sock, log_level="info", access_log=access_log, timeout_graceful_shutdown=30)


@main.command()
@click.option("--db", required=True, help="Audit database: a path, sqlite:///PATH or postgresql://URL.")
@click.option("--since", default=None, help="From this ISO 8601 time (UTC unless an offset is given).")
@click.option("--until", default=None, help="Up to (not including) this ISO 8601 time.")
@click.option("--tier", type=click.Choice(["edge", "cloud"]), default=None, help="Only records answered on this tier.")
@click.option("--reason", default=None, help="Only this routing reason (e.g. low_confidence, fallback:timeout).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N records.")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path), default=None, help="Write the records to CSV.")
def audit(
    db: str,
    since: str | None,
    until: str | None,
    tier: str | None,
    reason: str | None,
    limit: int | None,
    csv_out: Path | None,
) -> None:
    """Query the audit log by time, tier and reason; print records or export them as CSV."""
    from hybridroute.monitoring.audit import iso_time, open_audit_reader, parse_time, sqlite_file

    _check_outputs({"--csv": csv_out}, {"the audit database given with --db": sqlite_file(db)})
    store = open_audit_reader(db)
    try:
        filters: dict[str, Any] = {
            "since": parse_time(since) if since is not None else None,  # an empty value is refused, not ignored
            "until": parse_time(until) if until is not None else None,
            "tier": tier,
            "reason": reason,
            "limit": limit,
        }
        if csv_out is not None:
            click.echo(f"wrote {store.export_csv(csv_out, **filters)} records to {csv_out}")
            return
        for r in store.query(**filters):
            click.echo(
                f"{iso_time(r.time)}\t{r.request_id}\t{r.tier}\t{r.reason}\t{r.label}\t{r.confidence:.3f}\t"
                f"{r.latency_ms:.1f} ms\t${r.cost:.5f}\t{r.model_version}\t{r.feedback_label or '-'}"
            )
        click.echo(f"dropped on overflow (all time): {store.dropped()}", err=True)
    finally:
        store.close()


# ---------------------------------------------------------------- benchmarks and demo


@main.group(cls=HybridGroup)
def bench() -> None:
    """Benchmarks behind every published number."""


@bench.command("compression")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Trained run folder.")
@click.option("--test", type=click.Path(path_type=Path), required=True, help="Labelled test CSV/JSONL.")
@column_options()
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the full result here.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Latency passes; medians are reported.")
@threads_option()
@limit_option()
@click.option(
    "--variants",
    "variants",
    is_flag=True,
    help="Benchmark the compression variants (one table) instead of the model comparison.",
)
@click.option("--variant-names", default="", help="With --variants: comma-separated names (default: all).")
@click.option(
    "--latency-queries",
    type=click.IntRange(min=1),
    default=None,
    help="Single queries timed per repeat (default: 300; 200 with --variants).",
)
def bench_compression(
    run_dir: Path,
    test: Path,
    text_col: str,
    label_col: str,
    json_out: Path | None,
    repeats: int,
    threads: int,
    limit: int,
    variants: bool,
    variant_names: str,
    latency_queries: int | None,
) -> None:
    """PyTorch FP32 vs ONNX FP32 vs ONNX INT8 (and TF-IDF) on a test set."""
    sample = {"latency_queries": latency_queries} if latency_queries is not None else {}
    if variant_names and not variants:
        raise click.BadParameter(
            "variant names apply with --variants; add it or drop them", param_hint="--variant-names"
        )
    if threads and variants:
        message = "--variants times every variant with 1 and 2 threads; drop --threads"
        raise click.BadParameter(message, param_hint="--threads")
    _check_outputs({"--json": json_out}, {"the test file given with --test": test})
    if variants:
        _bench_variants(run_dir, test, text_col, label_col, json_out, limit, variant_names, repeats=repeats, **sample)
        return
    from hybridroute.bench.compression import CompressionBenchConfig, markdown_table, run_compression_bench

    config = CompressionBenchConfig(
        run_dir, test, text_col, label_col, repeats=repeats, threads=threads, limit=limit, **sample
    )
    result = run_compression_bench(config)
    click.echo(markdown_table(result))
    _save_json(result, json_out)


@bench.command("summary")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model",
    default="onnx_int8",
    show_default=True,
    help="Compression results: the model whose timings it shows (--variants results: one variant's runs; "
    "default: every variant's medians).",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the whole summary here.")
def bench_summary(results: tuple[Path, ...], model: str, json_out: Path | None) -> None:
    """Median, min and max across saved `bench compression` or `bench load` --json results of one experiment."""
    from hybridroute.bench.summary import (
        load_markdown_table,
        load_result,
        markdown_table,
        summarise,
        variants_markdown_table,
    )

    _check_outputs({"--json": json_out}, {f"result {i} of RESULTS": path for i, path in enumerate(results, start=1)})
    summary = summarise([load_result(path) for path in results], [str(path) for path in results])
    model_given = _given("model")
    if summary.get("benchmark") == "load":
        if model_given:
            raise click.BadParameter("load results have configurations, not models", param_hint="--model")
        click.echo(load_markdown_table(summary))
    elif summary.get("benchmark") == "variants":
        click.echo(variants_markdown_table(summary, model if model_given else None))
    else:
        click.echo(markdown_table(summary, model))
    _save_json(summary, json_out)


def _save_json(result: Mapping[str, Any], json_out: Path | None, also: str = "") -> None:
    """Save a benchmark's result where --json asked (nothing without it) and say where."""
    if json_out is not None:
        from hybridroute.bench.output import write_json

        click.echo(f"saved {write_json(result, json_out)}{also}")


def _bench_variants(
    run_dir: Path,
    test: Path,
    text_col: str,
    label_col: str,
    json_out: Path | None,
    limit: int,
    variant_names: str,
    **measure: int,
) -> None:
    from hybridroute.bench.variants import VariantBenchConfig, run_variants_bench
    from hybridroute.bench.variants import markdown_table as variants_table

    names = [n.strip() for n in variant_names.split(",") if n.strip()]
    config = VariantBenchConfig(**measure)
    result = run_variants_bench(run_dir, test, text_col, label_col, limit, names, config, progress=click.echo)
    click.echo(variants_table(result))
    _save_json(result, json_out)


@bench.command("routing")
@click.option(
    "--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder with edge, cloud and router."
)
@click.option("--test", type=click.Path(path_type=Path), required=True, help="Labelled test CSV/JSONL.")
@column_options()
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the result here (plot beside it).")
@click.option(
    "--plot", type=click.Path(path_type=Path), default=None, help="PNG path [default: beside --json, else in RUN]."
)
@limit_option()
@click.option(
    "--http-sample",
    type=int,
    default=200,
    show_default=True,
    help="Texts sent through the real cloud service (0 skips the check).",
)
@click.option(
    "--outage-sample", type=int, default=200, show_default=True, help="Texts routed per outage scenario (0 skips them)."
)
@click.option(
    "--edge-batch-size",
    type=click.IntRange(1, 4096),
    default=64,
    show_default=True,
    help="Texts per edge call in the test pass (1: each alone, as a single query is answered).",
)
@_json_file_option("prices", "the costs and savings (measured mode prices the edge's CPU at its cpu_hour_price)")
def bench_routing(
    run_dir: Path,
    test: Path,
    text_col: str,
    label_col: str,
    json_out: Path | None,
    plot: Path | None,
    limit: int,
    http_sample: int,
    outage_sample: int,
    edge_batch_size: int,
    prices_file: Path | None,
) -> None:
    """Every routing policy on a test set: accuracy, cost, cascade curves, HTTP agreement, outages."""
    from hybridroute.bench.routing import RoutingBenchConfig, markdown_table, plot_path, run_routing_bench
    from hybridroute.config import config_from_file
    from hybridroute.routing.ledger import PriceConfig

    config = RoutingBenchConfig(
        run_dir,
        test,
        text_col,
        label_col,
        limit=limit,
        http_sample=http_sample,
        outage_sample=outage_sample,
        plot=plot,
        edge_batch_size=edge_batch_size,
        prices=config_from_file(PriceConfig, prices_file),
    )
    plot_option = "--plot" if plot is not None else "the plot"
    inputs = {"the test file given with --test": test, "the prices file given with --prices": prices_file}
    _check_outputs({"--json": json_out, plot_option: plot_path(config, json_out)}, inputs)
    result = run_routing_bench(config, json_out=json_out)
    click.echo(markdown_table(result))
    _save_json(result, json_out, also=f" and {result['plot']}")


@bench.command("load")
@click.option(
    "--url",
    multiple=True,
    help="A running edge service to load as the batched configuration; repeat it for replicas of one service "
    "(the clients are spread evenly over them).",
)
@click.option(
    "--unbatched-url", multiple=True, help="A running edge service started with --max-batch 1 (repeatable, as --url)."
)
@click.option(
    "--plain-url",
    multiple=True,
    help="A running plain baseline, hybridroute bench plain-server (repeatable, as --url).",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Start the server of every configuration without a URL from this run folder, one at a time.",
)
@click.option("--concurrency", type=click.IntRange(1, 4096), default=32, show_default=True, help="Concurrent clients.")
@click.option("--duration", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Measured seconds.")
@click.option("--warmup", type=click.FloatRange(min=0.0), default=2.0, show_default=True, help="Unmeasured seconds.")
@click.option("--processes", type=click.IntRange(1, 256), default=2, show_default=True, help="Client processes.")
@click.option(
    "--max-requests", type=click.IntRange(min=1), default=1_000_000, show_default=True, help="Per configuration."
)
@click.option("--timeout", type=click.FloatRange(min=0.001), default=10.0, show_default=True, help="Per request, s.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Open loop: offer this many requests/s in all (latency counts from when each was due). Default: closed loop.",
)
@click.option("--max-batch", type=click.IntRange(2, 4096), default=32, show_default=True, help="Batched server.")
@click.option(
    "--max-wait-ms", type=click.FloatRange(0.0, 1000.0), default=2.0, show_default=True, help="Batched server."
)
@threads_option()
@click.option(
    "--workers", type=click.IntRange(1, 256), default=1, show_default=True, help="Edge services' concurrent batches."
)
@click.option(
    "--replicas",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes started per configuration, each on its own port, sharing one audit database; the "
    "clients are spread evenly over them (with --workers 1 --threads 1: one process per core).",
)
@click.option("--policy", default="always-edge", show_default=True, help="Started services' policy ('' = the run's).")
@click.option(
    "--texts",
    "texts_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Request texts, one per line [default: the run's validation texts, else built-in messages].",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False), help="Write the result here.")
def bench_load(
    url: tuple[str, ...],
    unbatched_url: tuple[str, ...],
    plain_url: tuple[str, ...],
    run_dir: Path | None,
    texts_file: Path | None,
    json_out: Path | None,
    **options: Any,
) -> None:
    """Real HTTP load on loopback: throughput, p50/p95/p99 and errors, batched vs unbatched vs plain."""
    from hybridroute.bench import load

    o = options
    config = load.LoadConfig(
        o["concurrency"], o["duration"], o["warmup"], o["processes"], o["max_requests"], o["timeout"], o["rate"]
    )
    plan = None
    if run_dir is not None:
        plan = load.ServerPlan(
            run_dir,
            o["max_batch"],
            o["max_wait_ms"],
            o["threads"],
            o["workers"],
            o["policy"] or None,
            replicas=o["replicas"],
        )
    elif o["replicas"] > 1:
        raise click.UsageError(
            "--replicas applies to the servers --run starts; give --run RUN, or repeat --url for running replicas"
        )
    targets = load.plan_targets({"batched": url, "unbatched": unbatched_url, "plain": plain_url}, plan)
    _check_outputs({"--json": json_out}, {"the texts file given with --texts": texts_file})
    texts, source = load.request_texts(texts_file, run_dir)
    result = load.run_load_bench(config, targets, texts, plan, progress=click.echo, text_source=source)
    click.echo(load.markdown_table(result))
    _save_json(result, json_out)


def _batch_sizes(_context: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    """--batch-sizes "1,8,32" -> (1, 8, 32); anything else is a usage error that says what was given."""
    try:
        sizes = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of whole numbers, e.g. 1,8,32") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"{value!r}: give batch sizes of at least 1, e.g. 1,8,32")
    return sizes


@bench.command("batching")
@click.option(
    "--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder with an edge bundle."
)
@click.option(
    "--texts",
    "texts_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Texts, one per line [default: the run's validation texts].",
)
@click.option(
    "--batch-sizes", default="1,2,4,8,16,32", show_default=True, callback=_batch_sizes, help="Call sizes to time."
)
@click.option("--limit", type=click.IntRange(min=1), default=960, show_default=True, help="Texts per measurement.")
@click.option("--threads", type=click.IntRange(min=1, max=256), default=1, show_default=True, help="Intra-op threads.")
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Which texts, in which arrival order."
)
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False), help="Write the result here.")
def bench_batching(
    run_dir: Path,
    texts_file: Path | None,
    batch_sizes: tuple[int, ...],
    limit: int,
    threads: int,
    seed: int,
    json_out: Path | None,
) -> None:
    """Model CPU time per text at each batch size: the most micro-batching can add to throughput."""
    from hybridroute.bench.batching import BatchingBenchConfig, markdown_table, run_batching_bench
    from hybridroute.bench.load import request_texts

    _check_outputs({"--json": json_out}, {"the texts file given with --texts": texts_file})
    texts, source = request_texts(texts_file, run_dir)
    config = BatchingBenchConfig(batch_sizes, limit, threads, seed)
    result = run_batching_bench(run_dir, texts, source, config, progress=click.echo)
    click.echo(markdown_table(result))
    _save_json(result, json_out)


@bench.command("plain-server", hidden=True)
@click.option("--run", "run_dir", type=click.Path(path_type=Path, exists=True), required=True, help="Run or bundle.")
@listen_options(8002)
@threads_option()
def bench_plain_server(run_dir: Path, host: str, port: int, threads: int) -> None:
    """Serve the edge model behind a plain handler without batching (the load benchmark's baseline)."""
    from hybridroute.bench.plain_server import create_plain_app
    from hybridroute.runtime import EdgeClassifier
    from hybridroute.serving.reload import warm_up
    from hybridroute.serving.uvicorn_runner import listen, serve_foreground

    bundle = run_dir / "edge" if (run_dir / "edge").is_dir() else run_dir
    with contextlib.closing(listen(host, port)) as sock:
        classifier = EdgeClassifier.from_dir(bundle, threads=threads)
        warm_up(classifier, 3)
        serve_foreground(create_plain_app(classifier), sock, log_level="warning", access_log=False)


# ---------------------------------------------------------------- monitoring


DEFAULT_MIN_WINDOW = 50  # MonitorThresholds.min_window (a test keeps the two equal)


def _min_window_option() -> Callable[[F], F]:
    return click.option(
        "--min-window",
        type=click.IntRange(min=1),
        default=None,
        help="Fewest queries a window needs for a verdict (alerts, score); --window must be at least this "
        f"[default: the --thresholds file's min_window, else {DEFAULT_MIN_WINDOW}].",
    )


def _monitor_inputs(
    run_dir: Path | None,
    window: int,
    min_window: int | None,
    thresholds_file: Path | None,
    prices_file: Path | None,
) -> tuple[Any, Any, Any]:
    """The drift reference, thresholds and windowing (with the cloud price) of ``monitor`` and ``report``.

    A window smaller than the minimum window could never be judged (always insufficient_data, no alerts,
    exit 0), so it is refused.
    """
    from hybridroute.config import config_from_file
    from hybridroute.errors import ConfigError
    from hybridroute.monitoring.drift import reference_for_run
    from hybridroute.monitoring.thresholds import MonitorConfig, MonitorThresholds
    from hybridroute.routing.ledger import PriceConfig

    thresholds = config_from_file(MonitorThresholds, thresholds_file, min_window=min_window)
    if window < thresholds.min_window:
        by_file = min_window is None and thresholds_file is not None
        given = f"min_window in {thresholds_file}" if by_file else "--min-window"
        raise ConfigError(
            f"--window {window} is smaller than {given} {thresholds.min_window}: a window that small never gets a "
            f"verdict; pass --window {thresholds.min_window} or more, or lower --min-window"
        )
    config = MonitorConfig(window_size=window, cloud_price=config_from_file(PriceConfig, prices_file).cloud_per_query)
    return (reference_for_run(run_dir) if run_dir else None), thresholds, config


@main.command()
@click.option("--db", required=True, help="Audit database: a path, sqlite:///PATH or postgresql://URL.")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True, help="HTML file to write."
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder: its validation split is the drift reference (built once, saved in the run).",
)
@click.option("--window", type=click.IntRange(min=1), default=1000, show_default=True, help="Queries per window.")
@_min_window_option()
@_json_file_option("thresholds", "the report's alerts and health score")
@_json_file_option("prices", "the cloud-only comparison (the answers' costs are in the log)")
def report(
    db: str,
    out: Path,
    run_dir: Path | None,
    window: int,
    min_window: int | None,
    thresholds_file: Path | None,
    prices_file: Path | None,
) -> None:
    """Write a self-contained HTML health report (plots inlined, PNG copies in OUT_files/)."""
    from hybridroute.monitoring.audit import sqlite_file
    from hybridroute.monitoring.report import check_report_out, render_report

    check_report_out(out, {"the audit database given with --db": sqlite_file(db)})
    reference, thresholds, config = _monitor_inputs(run_dir, window, min_window, thresholds_file, prices_file)
    path = render_report(db, out, reference, thresholds, config)
    click.echo(f"wrote {path} and {path.parent / (path.stem + '_files')}/*.png")


def _print_analysis(result: Any) -> None:
    from hybridroute.monitoring.trend import MIN_TREND_POINTS

    click.echo(f"health {result.health.score:.0f}/100 {result.health.status} ({result.window.queries} queries)")
    for alert in result.alerts:
        click.echo(f"  {alert.severity:8} {alert.name}: {alert.message}")
    for name, found in result.trends.items():
        if found.points < MIN_TREND_POINTS:
            click.echo(f"  trend {name}: untested ({found.points} windows; a trend needs {MIN_TREND_POINTS})")
        else:
            click.echo(f"  trend {name}: {found.direction} (slope {found.slope:+.4g}/h, p={found.p_value:.3f})")
    for advice in result.recommendations:
        click.echo(f"- {advice}")
    c = result.cost
    if c.daily_cost is None or c.monthly_cost is None:
        click.echo(f"cost: no answers yet (cloud only would be {c.monthly_cloud_only:.2f} USD/month)")
        return
    saves = "n/a" if c.savings_pct is None else f"{c.savings_pct:.1f}%"
    click.echo(
        f"cost: {c.daily_cost:.2f} USD/day, {c.monthly_cost:.2f} USD/month at {c.queries_per_day:.0f} "
        f"queries/day (cloud only {c.monthly_cloud_only:.2f}; saves {saves})"
    )


@main.command()
@click.option("--db", required=True, help="Audit database: a path, sqlite:///PATH or postgresql://URL.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None, help="Run folder for drift.")
@click.option("--window", type=click.IntRange(min=1), default=1000, show_default=True, help="Queries per window.")
@_min_window_option()
@_json_file_option("thresholds", "the alerts and health score")
@_json_file_option("prices", "the cloud-only comparison (the answers' costs are in the log)")
@click.option("--json", "as_json", is_flag=True, help="Print the whole analysis as JSON.")
def monitor(
    db: str,
    run_dir: Path | None,
    window: int,
    min_window: int | None,
    thresholds_file: Path | None,
    prices_file: Path | None,
    as_json: bool,
) -> None:
    """Health, alerts, trends, recommendations and cost of the recent traffic; exit status 2 when critical."""
    from hybridroute.monitoring.monitor import analyze, json_safe
    from hybridroute.monitoring.report import read_records

    reference, thresholds, config = _monitor_inputs(run_dir, window, min_window, thresholds_file, prices_file)
    result = analyze(read_records(db), reference, thresholds, config)
    if as_json:  # strict JSON: no data yet (NaN) is null
        click.echo(json.dumps(json_safe(result.to_dict()), indent=2, allow_nan=False))
    else:
        _print_analysis(result)
    if result.critical:
        raise SystemExit(2)  # lets cron or CI page on a critical alert


@bench.command("fuzz")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="Run folder whose edge and cloud bundles are served.",
)
@click.option("--requests", type=click.IntRange(min=1), default=10_000, show_default=True, help="Per endpoint.")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False), help="Write the result here.")
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed for the generated requests."
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True, help="Requests in flight.")
@click.option(
    "--schemathesis-share", type=click.FloatRange(0.0, 1.0), default=0.2, show_default=True, help="Generated by it."
)
def bench_fuzz(
    run_dir: Path, requests: int, json_out: Path | None, seed: int, concurrency: int, schemathesis_share: float
) -> None:
    """Hostile and generated requests against the real edge and cloud services; exit 1 on a 5xx or a crash."""
    from hybridroute.bench.fuzz import FuzzBenchConfig, run_fuzz_bench, summary_table

    _check_outputs({"--json": json_out}, {})
    config = FuzzBenchConfig(run_dir, requests, seed, concurrency, schemathesis_share)
    result = run_fuzz_bench(config, progress=click.echo)
    click.echo(summary_table(result))
    _save_json(result, json_out)
    if not result["targets"]["passed"]:
        raise SystemExit(1)


@bench.command("tracking")
@click.option(
    "--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Run folder with an edge bundle."
)
@click.option("--test", type=click.Path(path_type=Path), required=True, help="Labelled test CSV/JSONL.")
@column_options()
@click.option("--window", type=click.IntRange(min=10), default=300, show_default=True, help="Answers per window.")
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Order in which the texts arrive."
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the result here.")
def bench_tracking(
    run_dir: Path, test: Path, text_col: str, label_col: str, window: int, seed: int, json_out: Path | None
) -> None:
    """How closely the label-free accuracy estimate (mean calibrated confidence) tracks measured accuracy."""
    from hybridroute.bench.machine import machine_info
    from hybridroute.monitoring.estimate import measure_tracking, summary, verdict_text, verdicts

    _check_outputs({"--json": json_out}, {"the test file given with --test": test})
    found = measure_tracking(run_dir, test, text_col, label_col, window, seed=seed)
    within = verdicts(found)
    click.echo(summary(found))
    click.echo("within 2 points: " + ", ".join(f"{name} {verdict_text(ok)}" for name, ok in within.items()))
    settings = {"run": str(run_dir), "test": str(test), "window": window, "seed": seed}
    record = {"tracking": found.to_dict(), "within_2_points": within, "settings": settings}
    _save_json(record | {"machine": machine_info()}, json_out)


@bench.command("redaction")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    multiple=True,
    required=True,
    help="Texts to splice PII into: a CSV or JSONL file (its --text-col) or a TXT file, one text a line; repeatable.",
)
@click.option("--n", type=int, default=2000, show_default=True, help="Texts in the spliced PII corpus.")
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed for the corpus and the sample."
)
@click.option(
    "--bundle", type=click.Path(path_type=Path), default=None, help="With --test: bundle for the accuracy effect."
)
@click.option("--test", type=click.Path(path_type=Path), default=None, help="With --bundle: labelled test CSV/JSONL.")
@click.option("--text-col", default="text", show_default=True, help="Column holding the text in --data and --test.")
@click.option("--label-col", default=None, help="Column holding the --test label [default: label, else category].")
@click.option("--max-eval", type=int, default=1000, show_default=True, help="Most test texts classified per condition.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the report here.")
def bench_redaction(
    data: tuple[Path, ...],
    n: int,
    seed: int,
    bundle: Path | None,
    test: Path | None,
    text_col: str,
    label_col: str | None,
    max_eval: int,
    json_out: Path | None,
) -> None:
    """PII redaction: recall and precision per entity type, and its effect on accuracy."""
    from hybridroute.bench.redaction import RedactionBenchConfig, run_redaction_bench

    if (bundle is None) != (test is None):
        given, missing = ("--bundle", "--test") if test is None else ("--test", "--bundle")
        message = f"needs {missing}: the accuracy effect runs the --bundle on the --test set; add {missing} or drop it"
        raise click.BadParameter(message, param_hint=given)
    if test is None:
        _refuse_given(["label_col"], "it names the label column of --test; give --bundle and --test")
    inputs = {f"data file {i} given with --data": path for i, path in enumerate(data, start=1)}
    _check_outputs({"--json": json_out}, inputs | {"the test file given with --test": test})
    config = RedactionBenchConfig(
        data, n, seed, bundle=bundle, test_csv=test, max_eval=max_eval, text_col=text_col, label_col=label_col
    )
    report = run_redaction_bench(config)
    click.echo(report["table"])
    if "accuracy_effect" in report:
        click.echo(json.dumps(report["accuracy_effect"], indent=2))
    _save_json(report, json_out)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Folder for the demo: the generated data in OUT/synthetic, the run in OUT/run.",
)
@click.option(
    "--rows",
    type=click.IntRange(200, 200_000),
    default=1500,
    show_default=True,
    help="Synthetic training messages (test: a fifth, at least 200; --quick uses at most 600).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=7, show_default=True, help="Seed for the synthetic data and training."
)
@click.option("--quick", is_flag=True, help="Fewer epochs and rows: a faster, rougher demo.")
def demo(out: Path, rows: int, seed: int, quick: bool) -> None:
    """Generate synthetic customer-service data, run the whole pipeline, benchmark it, print a summary."""
    from hybridroute.demo import DemoConfig, run_demo

    click.echo(run_demo(DemoConfig(out, rows, seed, quick)))


def summarize_run(info: dict[str, Any]) -> str:
    """A few lines on what a training run produced."""
    lines = [
        f"labels: {len(info.get('data', {}).get('labels', []))}, train/validation: "
        f"{info.get('data', {}).get('train')}/{info.get('data', {}).get('validation')}"
    ]
    if "adapt" in info:
        lines.append(
            f"adaptation: MLM held-out loss {info['adapt']['loss_before']:.3f} -> {info['adapt']['loss_after']:.3f}"
        )
    if "finetune" in info:
        lines.append(f"fine-tuning: validation accuracy {info['finetune']['val_accuracy']:.4f}")
    if "compress" in info:
        c = info["compress"]
        lines.append(
            f"edge bundle: {c['fp32_mb']:.1f} MB -> {c['int8_mb']:.1f} MB (-{c['size_reduction_pct']:.1f}%), "
            f"validation accuracy FP32 {c['fp32_accuracy']:.4f}, INT8 {c['int8_accuracy']:.4f}"
        )
    return "\n".join(lines)
