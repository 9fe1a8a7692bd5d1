"""Typed run configuration: schema, YAML loading and dotted ``--set key=value`` overrides.

Every section is a strict pydantic model, so an unknown key, a wrong type or an out-of-range
value fails at load time with a message that names the dotted key and what is accepted.
``Config()`` with no arguments *is* the quickstart configuration, the one source of its values
(configs/quickstart.yaml is generated from it by ``quickstart_yaml``).

This is the foundation: it imports no component. What a component defines (the mixers behind
``model.mixer``/``model.mixers``, the tasks behind ``eval.tasks``, the loggers behind
``train.loggers``) it registers with ``plugins.register_config_check``, and the sections here
compose those checks by key (``_component_check``).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from birdie_ssm import plugins
from birdie_ssm.errors import BirdieError, not_a_file


def _component_check(key: str, *args: Any) -> Any:
    """Run the check the owning component registered for config ``key``; its error becomes a
    ValueError (what pydantic reports against the key)."""
    try:
        return plugins.config_check(key)(*args)
    except (ValueError, BirdieError) as exc:
        raise ValueError(str(exc)) from None


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# Letters of model.block_pattern: R = the recurrent mixer (model.mixer), A = the attention mixer
# (model.attention_mixer).
PATTERN_LETTERS = {"R": "mixer", "A": "attention_mixer"}


class ModelConfig(Section):
    """Architecture of the language model: common fields; each mixer's own under ``mixers``.

    ``arch: transformer`` is the prefix-LM Transformer baseline, shorthand for block_pattern
    "A" with every layer bidirectional over the prefix (``mixer`` and ``bidirectional`` do not
    apply to it). ``mixers`` maps a mixer name to its parameters (validated by that mixer's
    dataclass); after validation it holds exactly the mixers the layers use, every field spelled.
    """

    arch: Literal["ssm", "transformer"] = "ssm"
    mixer: str = Field("gated", description="the recurrent mixer: R in block_pattern")
    attention_mixer: str = Field("attention", description="the attention mixer: A in block_pattern")
    block_pattern: str = Field(
        "R", description="tiled over depth; R = model.mixer, A = attention (e.g. RRA)"
    )
    bidirectional: Literal["none", "alternate", "all"] = "alternate"
    vocab_size: int | None = Field(
        None, ge=2, description="None: taken from the tokenizer (rounded up to a multiple of 64)"
    )
    width: int = Field(128, ge=8, le=65536)
    depth: int = Field(4, ge=1, le=512)
    mlp_expansion: int = Field(3, ge=0, le=16, description="MLP width / width; 0: no MLP (Mamba)")
    mlp_bias: bool = Field(False, description="biases in the MLP's projections (RecurrentGemma)")
    embed_scale: float | None = Field(
        None, gt=0, description="input embeddings are multiplied by this; None: sqrt(width)"
    )
    logits_soft_cap: float | None = Field(
        None, gt=0, description="logits become c * tanh(logits / c); None: no cap"
    )
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="activation dtype")
    scan_impl: Literal["auto", "reference", "sequential", "associative", "pallas"] = "auto"
    remat: bool = Field(False, description="recompute each block's activations in backward")
    scan_layers: bool = Field(
        False, description="trace one period of blocks and scan it over depth (flat compile time)"
    )
    mixers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, validate_default=True, description="per-mixer parameters"
    )

    @field_validator("mixer", "attention_mixer")
    @classmethod
    def _mixer_registered(cls, value: str) -> str:
        _component_check("model.mixer", value)
        return value

    @field_validator("block_pattern")
    @classmethod
    def _pattern_letters(cls, value: str) -> str:
        if not value or set(value) - PATTERN_LETTERS.keys():
            raise ValueError(
                "model.block_pattern holds one letter per block, tiled over depth: R (the "
                "recurrent mixer, model.mixer) or A (model.attention_mixer), e.g. 'R', 'RRA'"
            )
        return value

    @field_validator("mixers")
    @classmethod
    def _mixer_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        for name, params in value.items():
            _mixer_config(name, params)
        needed = ("arch", "mixer", "attention_mixer", "block_pattern", "depth")
        if not set(needed) <= info.data.keys():
            return value  # an earlier field failed; its own error is reported
        kinds = _layer_kinds(*(info.data[k] for k in needed))
        return {
            name: dataclasses.asdict(_mixer_config(name, value.get(name, {})))
            for name in dict.fromkeys(kinds)
        }

    @model_validator(mode="after")
    def _shapes_fit(self) -> ModelConfig:
        if self.arch == "transformer" and self.block_pattern not in ("R", "A"):
            raise ValueError(
                f"model.block_pattern '{self.block_pattern}' needs model.arch 'ssm' (arch "
                "'transformer' is the all-attention baseline)"
            )
        for name in dict.fromkeys(self.layer_kinds()):
            self.mixer_config(name).check(self)
        return self

    def layer_kinds(self) -> list[str]:
        """The registered mixer name of every layer, in order."""
        return _layer_kinds(
            self.arch, self.mixer, self.attention_mixer, self.block_pattern, self.depth
        )

    def layer_bidirectional(self, index: int) -> bool:
        """Whether layer ``index`` reads the prefix in both directions ('alternate': even ones)."""
        if self.arch == "transformer":
            return True
        return self.bidirectional == "all" or (self.bidirectional == "alternate" and index % 2 == 0)

    def mixer_config(self, name: str) -> Any:
        """Mixer ``name``'s parameter dataclass (its defaults where ``mixers`` has no entry)."""
        return _mixer_config(name, self.mixers.get(name, {}))


def _mixer_config(name: str, params: Any) -> Any:
    """Mixer ``name``'s parameters as its dataclass; errors name ``model.mixers.<name>``."""
    try:
        return _component_check("model.mixers", name, params)
    except ValueError as exc:
        message = str(exc)
        if message.startswith(f"model.mixers.{name}"):
            raise
        raise ValueError(f"model.mixers.{name}: {message}") from None


def _layer_kinds(arch: str, mixer: str, attention: str, pattern: str, depth: int) -> list[str]:
    if arch == "transformer":
        pattern = "A"
    names = {"R": mixer, "A": attention}
    return [names[pattern[i % len(pattern)]] for i in range(depth)]


class SourceConfig(Section):
    """One corpus source: local files (globs; .txt/.jsonl/.json/.parquet, optionally .gz/.zst),
    or ``dataset``: a ``save_to_disk`` directory, else a Hugging Face dataset name."""

    name: str | None = Field(None, description="label in metrics; default: the files or dataset")
    files: list[str] = Field(default_factory=list, description="local files or globs")
    dataset: str | None = Field(None, description="a save_to_disk directory or a Hub dataset name")
    config: str | None = Field(None, description="the Hub dataset's configuration")
    split: str = "train"
    revision: str | None = None
    text_field: str = "text"
    weight: float = Field(1.0, description="share of training tokens (normalised over sources)")
    val_files: list[str] = Field(default_factory=list, description="validation files or globs")
    val_split: str | None = Field(None, description="validation split of the dataset")

    @field_validator("weight")
    @classmethod
    def _weight(cls, value: float) -> float:
        if not value >= 0:
            raise ValueError(f"a source's weight must be >= 0, got {value}")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        if bool(self.files) == (self.dataset is not None):
            raise ValueError("a data source needs exactly one of files or dataset")
        if self.val_split is not None and self.dataset is None:
            raise ValueError("val_split is for a dataset source; give files val_files")
        return self

    @property
    def label(self) -> str:
        """How metrics and errors name the source."""
        return self.name or self.dataset or ",".join(self.files)


class DataConfig(Section):
    """Where documents come from and how they become batches."""

    corpus: Literal["synthetic", "prose", "files"] = Field(
        "synthetic",
        description="synthetic templates, built-in English prose, or data.sources / data.files",
    )
    sources: list[SourceConfig] = Field(
        default_factory=list, description="weighted corpus sources (corpus: files)"
    )
    files: list[str] = Field(
        default_factory=list, description="local files: one source (sources' shorthand)"
    )
    text_field: str = "text"
    tokenizer: Literal["byte", "hf", "sentencepiece", "tiktoken"] = "byte"
    tokenizer_path: str | None = Field(
        None,
        description="hf: tokenizer.json, its directory or a Hub name; sentencepiece: a .model; "
        "tiktoken: an encoding name or a BPE file named for its encoding",
    )
    cache_dir: str | None = Field(
        None, description="token cache; default $BIRDIE_CACHE or ~/.cache/birdie-ssm/tokens"
    )
    seq_len: int = Field(256, ge=16, le=1_048_576)
    batch_size: int = Field(16, ge=1, le=65536)
    seed: int = Field(0, ge=0)
    val_batches_per_arm: int = Field(2, ge=1, le=1000)
    streams: int = Field(
        8, ge=1, le=256, description="independent batch streams (workers share them out)"
    )
    workers: int | Literal["auto"] = Field(
        "auto",
        description="batch-making processes; auto: 0 on a CPU backend, else min(8, CPUs - 2)",
    )
    prefetch: int = Field(4, ge=1, le=1024, description="batches each data worker keeps ready")

    @field_validator("workers", mode="before")
    @classmethod
    def _workers_count(cls, value: Any) -> Any:
        if value == "auto" or (type(value) is int and 0 <= value <= 256):
            return value
        raise ValueError(f"data.workers must be 'auto' or an integer in [0, 256], got {value!r}")

    @model_validator(mode="after")
    def _files_needed(self) -> DataConfig:
        if self.corpus == "files" and not (self.files or self.sources):
            raise ValueError(
                "data.corpus is 'files' but data.files is empty and data.sources lists none"
            )
        if self.files and self.sources:
            raise ValueError("give data.sources or data.files (one source), not both")
        if self.sources and not any(s.weight > 0 for s in self.sources):
            raise ValueError("data.sources' weights are all zero; give one a positive weight")
        if self.tokenizer != "byte" and not self.tokenizer_path:
            raise ValueError(f"data.tokenizer '{self.tokenizer}' needs data.tokenizer_path")
        return self

    def corpus_sources(self) -> list[SourceConfig]:
        """The sources of a file corpus (``data.files`` is one source)."""
        if self.files:
            return [SourceConfig(files=self.files, text_field=self.text_field)]
        return list(self.sources)


class ObjectiveEntry(Section):
    """One objective in the mixture; a parameter given as a list expands into several arms."""

    name: str
    weight: float = Field(1.0, ge=0.0)
    params: dict[str, Any] = Field(default_factory=dict)


def _default_mixture() -> list[ObjectiveEntry]:
    """The quickstart's family of objectives, sized for 256-token rows (configs/quickstart.yaml)."""
    recall = {"pairs": [2, 4, 8], "key_length": 1, "value_length": 1}
    return [
        ObjectiveEntry(name="next_token"),
        ObjectiveEntry(name="prefix_lm"),
        ObjectiveEntry(name="copying", params={"length": "4-12"}),
        ObjectiveEntry(
            name="selective_copying",
            params={
                "spans": 1,
                "context_length": "16-48",
                "span_length": "2-4",
                "delimiter_length": 2,
            },
        ),  # fmt: skip
        ObjectiveEntry(
            name="associative_recall",
            params={"pairs": "2-8", "key_length": 1, "value_length": 1, "queries": 1},
        ),
        ObjectiveEntry(name="task_format", params={"task": "mqar", "settings": recall}),
    ]


class ObjectivesConfig(Section):
    """The objective mixture and extra modules that register objectives."""

    modules: list[str] = Field(default_factory=list, description="modules imported for plug-ins")
    mixture: list[ObjectiveEntry] = Field(default_factory=_default_mixture, min_length=1)


class ControllerConfig(Section):
    """The curriculum controller that turns validation losses into the next mixture."""

    name: str = "birdie"
    reward: Literal["birdie", "relative"] = "birdie"
    params: dict[str, Any] = Field(default_factory=dict)
    modules: list[str] = Field(
        default_factory=list, description="modules (or .py files) imported to register controllers"
    )


class TrainConfig(Section):
    """Optimisation and bookkeeping of the training loop."""

    steps: int = Field(600, ge=1)
    lr: float = Field(2e-3, gt=0.0, le=10.0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    warmup_steps: int = Field(40, ge=0)
    schedule: Literal["cosine", "wsd"] = Field(
        "cosine", description="cosine decay, or warmup-stable-decay (extends without a jump)"
    )
    decay_fraction: float = Field(0.2, gt=0.0, le=1.0, description="wsd: share of steps decaying")
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    grad_accum: int = Field(
        1, ge=1, le=4096, description="micro-batches per step: data.batch_size split k ways"
    )
    b1: float = Field(0.9, ge=0.0, lt=1.0)
    b2: float = Field(0.95, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0)
    log_every: int = Field(20, ge=1)
    checkpoint_every: int = Field(300, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    progress: bool = True
    max_nonfinite: int = Field(
        5, ge=1, description="consecutive non-finite steps (skipped) before the run stops"
    )
    mesh_data: int = Field(0, ge=0, description="data-parallel devices; 0: all not used by fsdp")
    mesh_fsdp: int = Field(1, ge=1, description="devices that shard params and optimizer state")
    distributed: bool = Field(False, description="multi-host: call jax.distributed.initialize()")
    loggers: list[str] = Field(
        default_factory=lambda: ["jsonl"],
        description="where metrics go: jsonl (always written), tensorboard, wandb",
    )

    @field_validator("loggers")
    @classmethod
    def _loggers_registered(cls, value: list[str]) -> list[str]:
        _component_check("train.loggers", value)
        # metrics.jsonl is always written (the source of truth): say so in the saved config.
        return ["jsonl", *dict.fromkeys(n for n in value if n != "jsonl")]


# What the quickstart's `birdie-ssm eval` asks: held-out items in the layouts it trained, sized
# within what it trained on (configs/quickstart.yaml shows them).
QUICKSTART_TASKS: dict[str, dict[str, Any]] = {
    "mqar": {"pairs": [2, 4, 8], "key_length": 1, "value_length": 1, "samples": 64},
    "copying": {"lengths": [6, 12], "samples": 32},
}


class EvalConfig(Section):
    """When validation runs during training, and the retrieval tasks ``birdie-ssm eval`` runs
    on the trained model when no task is named."""

    schedule: Literal["birdie", "every"] = "birdie"
    every: int = Field(100, ge=1, description="interval for schedule 'every'")
    scale: float = Field(0.3, gt=0.0, description="stretches Birdie's 10/50/250/... schedule")
    tasks: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: copy.deepcopy(QUICKSTART_TASKS),
        description="task name -> its settings (see `birdie-ssm eval --help`)",
    )

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, settings in tasks.items():
            try:
                _component_check("eval.tasks", name, settings or {})
            except ValueError as exc:
                raise ValueError(f"eval.tasks.{name}: {exc}") from None
        return tasks


class Config(Section):
    """A whole run. ``Config()`` is the quickstart."""

    name: str = "quickstart"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    objectives: ObjectivesConfig = Field(default_factory=ObjectivesConfig)
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


def _keys_at(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at ``loc`` (for suggesting names)."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or ())]
        nxt = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if nxt is None:
            return None
        model = nxt
    return model


def error_text(error: Any) -> str:
    """A pydantic error's message in our words: a check's own ValueError message as raised
    (without pydantic's 'Value error, ' prefix), else pydantic's message."""
    cause = (error.get("ctx") or {}).get("error") if error["type"] == "value_error" else None
    return str(cause) if cause is not None else error["msg"].removeprefix("Value error, ")


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        section = _section_at(loc)
        valid = _keys_at(section) if section else []
        hint = plugins.did_you_mean(loc[-1], valid)
        return f"unknown config key '{key}'{hint} (accepted here: {', '.join(valid)})"
    if not loc:
        return f"invalid config: {error['msg']}"
    if error["type"] == "value_error":
        text = error_text(error)  # one of our checks: it says what is accepted
        return text if text.startswith((key, f"{loc[0]}.")) else f"{key}: {text}"
    value = error.get("input")
    return f"invalid value {value!r} for config key '{key}': {error['msg']}"


def validate(raw: dict[str, Any]) -> Config:
    """Build a Config from a plain dict, turning validation errors into one BirdieError."""
    if not isinstance(raw, dict):
        raise BirdieError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except pydantic.ValidationError as exc:
        messages = [_describe(e) for e in exc.errors()]
        raise BirdieError("; ".join(messages)) from None


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` to a raw config dict; the value is parsed as YAML
    (``1``, ``[1, 2]``)."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise BirdieError(f"--set expects key=value (e.g. train.steps=100), got {assignment!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise BirdieError(
                    f"--set {key}: '{'.'.join(parts[: i + 1])}' indexes a list of {len(node)} items"
                )
            node = node[int(part)]
            continue
        child = node.setdefault(part, {})
        if not isinstance(child, dict | list):
            raise BirdieError(
                f"--set {key}: '{'.'.join(parts[: i + 1])}' is a value, not a section"
            )
        node = child
    last = parts[-1]
    if isinstance(node, list):
        # Index len(list) appends, so a mixture can gain an objective from the command line.
        if not last.isdigit() or int(last) > len(node):
            raise BirdieError(f"--set {key}: '{last}' does not index a list of {len(node)} items")
        if int(last) == len(node):
            node.append(value)
        else:
            node[int(last)] = value
    else:
        node[last] = value


def load_raw(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML config file into a dict (the quickstart defaults when ``path`` is None)."""
    if path is None:
        return Config().model_dump(mode="json")
    path = Path(path)
    if not path.is_file():
        raise BirdieError(f"config file '{path}' {not_a_file(path)}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BirdieError(f"config file '{path}' is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BirdieError(f"config file '{path}' must hold a mapping of sections")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a config file (or the quickstart) and apply ``key=value`` overrides."""
    raw = copy.deepcopy(load_raw(path))
    for assignment in overrides or []:
        apply_override(raw, assignment)
    return validate(raw)


def dump_config(config: Config, path: str | Path) -> None:
    """Write a config as YAML (what ``--config`` reads back)."""
    Path(path).write_text(
        yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
    )


# configs/quickstart.yaml is generated from ``Config()`` (the one source of the quickstart's
# values) by ``quickstart_yaml``; tests/test_config.py checks the file is up to date.
QUICKSTART_HEADER = """\
# The quickstart: Birdie pretraining on a 2-core CPU in a few minutes. A ~1M-parameter
# bidirectional-to-causal gated SSM (every other layer reads the prefix both ways) on the built-in
# synthetic corpus with the byte tokenizer; the Birdie controller over a CPU-sized family of
# objectives: next-token, prefix LM, copying, selective copying, associative recall, and the MQAR
# task's own format (task_format: random keys and values; eval asks held-out ones).
# `birdie-ssm eval --checkpoint runs/quickstart` then asks held-out MQAR and copying items
# (eval.tasks). `birdie-ssm train` with no --config uses these values.
#
# GENERATED from the schema's defaults in birdie_ssm/config.py (the one source; an installed
# package needs no file): do not edit. Regenerate with
#   python -c "from birdie_ssm.config import quickstart_yaml; print(quickstart_yaml(), end='')" \\
#     > configs/quickstart.yaml
"""


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (flow style)."""
    return yaml.safe_dump([value], default_flow_style=True, width=1 << 20, sort_keys=False)[1:-2]


def _comment(text: str | None) -> str:
    return f"  # {' '.join(text.replace('``', '').split())}" if text else ""


def quickstart_yaml() -> str:
    """configs/quickstart.yaml: every key of ``Config()`` (the quickstart), in schema order,
    with each field's description as a comment; mappings and lists of mappings one item a line."""
    lines = QUICKSTART_HEADER.splitlines()
    values = Config().model_dump(mode="json")
    for name, field in Config.model_fields.items():
        section = field.annotation
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            lines.append(f"{name}: {_flow(values[name])}{_comment(field.description)}")
            continue
        doc = (section.__doc__ or "").strip().split("\n\n")[0]  # its first paragraph
        lines.append(f"{name}:{_comment(doc)}")
        for key, sub in section.model_fields.items():
            value = values[name][key]
            if isinstance(value, dict):
                children = [(f"{k}:", v) for k, v in value.items()]
            else:
                children = [("-", v) for v in value] if isinstance(value, list) else []
            if children and all(isinstance(v, dict) for _, v in children):
                lines.append(f"  {key}:{_comment(sub.description)}")
                lines += [f"    {k} {_flow(v)}" for k, v in children]
            else:
                lines.append(f"  {key}: {_flow(value)}{_comment(sub.description)}")
    return "\n".join(lines) + "\n"


# The resume rules, for every caller (the CLI's --resume, the Trainer, an experiment's stages,
# a Birdie state). Settings that change how a run's batches and steps are made, never which:
# a resumed run may change them, and they are no part of a run's identity.
SPEED_KEYS = ("data.workers", "data.prefetch", "data.cache_dir", "model.scan_impl")
# Besides those, a resumed run may change how long it runs and how it reports, not what it learns.
RESUME_SAFE = (
    *SPEED_KEYS, "train.steps", "train.log_every", "train.checkpoint_every",
    "train.keep_checkpoints", "train.progress", "train.max_nonfinite", "eval.every",
    "eval.schedule", "eval.scale",
)  # fmt: skip


def run_identity(section: BaseModel, prefix: str) -> dict[str, Any]:
    """``section`` (at dotted ``prefix``, e.g. ``data``) as JSON without its SPEED_KEYS: what
    two runs, stages or Birdie states must share to be the same."""
    dumped = section.model_dump(mode="json")
    return {k: v for k, v in dumped.items() if f"{prefix}.{k}" not in SPEED_KEYS}


def same_run(a: Config, b: Config) -> bool:
    """Whether two configs describe the same run (they differ in SPEED_KEYS at most)."""
    return all(k in SPEED_KEYS for k in diff_keys(a, b))


def resume_changes(old: Config, new: Config) -> list[str]:
    """The keys ``new`` changes that a resumed run may not (see RESUME_SAFE)."""
    return [k for k in diff_keys(old, new) if k not in RESUME_SAFE]


def diff_keys(a: BaseModel, b: BaseModel, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configs (or sections)."""
    keys = []
    for name in type(a).model_fields:
        x, y = getattr(a, name), getattr(b, name)
        key = f"{prefix}{name}"
        if isinstance(x, BaseModel) and isinstance(y, BaseModel):
            keys += diff_keys(x, y, f"{key}.")
        elif x != y:
            keys.append(key)
    return keys


def resolve_paths(config: Config) -> Config:
    """The config with its file paths (corpus files and directories, tokenizer, token cache,
    module files) made absolute, so a saved config.yaml works from any working directory."""

    def absolute(path: str) -> str:
        return str(Path(path).expanduser().resolve())

    def local(path: str | None) -> str | None:
        """A path that exists here made absolute; a name (a Hub dataset or tokenizer, a tiktoken
        encoding) as given."""
        return absolute(path) if path and Path(path).expanduser().exists() else path

    sources = [
        s.model_copy(
            update={
                "files": [absolute(f) for f in s.files],
                "val_files": [absolute(f) for f in s.val_files],
                "dataset": local(s.dataset),
            }
        )
        for s in config.data.sources
    ]
    data = config.data.model_copy(
        update={
            "files": [absolute(f) for f in config.data.files],
            "sources": sources,
            "tokenizer_path": local(config.data.tokenizer_path),
            "cache_dir": config.data.cache_dir and absolute(config.data.cache_dir),
        }
    )
    modules = [absolute(m) if m.endswith(".py") else m for m in config.objectives.modules]
    objectives = config.objectives.model_copy(update={"modules": modules})
    return config.model_copy(update={"data": data, "objectives": objectives})
