"""The one configuration of a run: built from flags, saved with the run, passed inward."""
import dataclasses
import json
import os
import math
import re
import typing
from typing import Optional

from zoo import augment
from zoo.errors import UsageError

LIKELIHOODS = ("auto", "bernoulli", "logistic")
FEATURE_NETWORKS = ("domain", "inception")
D_NORMS = ("batch", "layer", "none")  # the GANs' discriminator normalisation (zoo.models.dcgan)
# What a field left at None gets unless the model's `config_defaults` say otherwise: the DCGAN paper's.
MODEL_DEFAULTS = {"learning_rate": 2e-4, "beta_1": 0.5, "latent_dim": 100, "epochs": 20}
EVAL_EVERY_DEFAULT = 500  # steps; evaluating 2000 samples costs about 5% of the steps between (docs/results.md)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_interval(text):
    """Steps or a duration: "500" -> (500, None); "90s", "5m", "1h" -> (None, seconds)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", str(text))
    if not match or int(match[1]) < 1:
        raise UsageError(f"checkpoint_every must be a positive number of steps (500) or a duration "
                         f"(90s, 5m, 1h), got {text!r}")
    count, unit = int(match[1]), match[2]
    return (None, count * DURATION_UNITS[unit]) if unit else (count, None)


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "dcgan"
    dataset: str = "shapes"
    image_size: int = 32
    batch_size: int = 64
    epochs: Optional[int] = None  # None: the model's default (MODEL_DEFAULTS, or its config_defaults)
    steps_per_epoch: int = 0  # 0: one pass over the training split
    latent_dim: Optional[int] = None  # None: the model's default (MODEL_DEFAULTS, or its config_defaults)
    base_filters: int = 32  # width of the networks' first/last convolution
    learning_rate: Optional[float] = None  # None: the model's default
    beta_1: Optional[float] = None  # None: the model's default
    lr_decay: float = 0.0  # share of the run at its end over which the learning rate falls to 0 (zoo.optim.
    # LinearDecay); 0: constant (measured: the decay cost 5-minute runs more than it gave 20-minute ones)
    workdir: str = ""  # "": runs/<model>_<dataset>
    seed: int = 0
    xla: Optional[bool] = None  # None: the fastest measured per device type (zoo.device.auto_settings)
    precision: str = "auto"  # auto: the fastest measured per device type (zoo.device.auto_settings)
    strategy: str = "auto"
    data_dir: Optional[str] = None
    manual_dir: Optional[str] = None
    num_samples: int = 64  # images in each epoch's sample grid
    likelihood: str = "auto"  # the VAE's p(x|z); auto: bernoulli for 1 channel, logistic for colour
    kl_weight: float = 1.0  # the VAE's beta on the KL term; 1: the true ELBO
    iw_samples: int = 0  # importance samples of the VAE's test log-likelihood estimate; 0: none
    condition_on: str = ""  # comma-separated CelebA attributes whose bits make the class label
    # quality (issue 9)
    # GANs' batch norm statistics over the global batch under tf.distribute; None: on with several replicas
    sync_batch_norm: Optional[bool] = None
    ema_kimg: float = 10.0  # GANs: half-life of G's weight average in thousands of images; 0: no average
    ema_rampup: float = 0.05  # GANs: the half-life is at most this share of the images seen so far; 0: no cap
    diffaugment: str = "color,translation"  # GANs: DiffAugment transforms of D's inputs; "": none (cutout, measured in
    # docs/results.md: it hid the cGAN's class on shapes, roughened the default shapes DCGAN run, and helped the
    # DCGAN on Fashion-MNIST only after 10 minutes)
    r1_gamma: float = 0.0  # GANs: weight of the R1 penalty on D's real-image gradients; 0: off
    r1_batch_shrink: int = 1  # GANs: R1 on the first 1/r1_batch_shrink (>= 1) of each replica's real images
    class_loss: float = 0.3  # cGAN: weight of the auxiliary classifier's cross-entropy (AC-GAN); 0: off (0.3: measured,
    # docs/results.md: 1 collapsed each class of shapes to one image)
    d_norm: str = "layer"  # GANs: D's normalisation, one of D_NORMS (layer: measured best, docs/results.md)
    # Evaluation (zoo.evaluate, zoo.features)
    eval_every: Optional[int] = None  # steps between scores during training; 0: off; None: EVAL_EVERY_DEFAULT
    # for datasets the domain features can score (labelled), else off
    eval_samples: int = 2000  # generated images each evaluation during training scores
    features: str = "domain"  # feature network of FID/KID/precision/recall: domain or inception
    inception: str = ""  # Inception .pb graph or Keras .h5 weights; "": looked for in ~/.keras/models
    cache_dir: str = ""  # where domain feature networks are cached; "": <tfds data_dir>/zoo_features
    # Crash safety (zoo.training): how often a checkpoint is saved, and how many are kept.
    checkpoint_every: str = "5m"  # steps ("500") or a duration ("90s", "5m", "1h")
    keep_checkpoints: int = 3
    # speed (issue 11)
    steps_per_execution: int = 16  # train steps per call from the host: one host sync (and callback) each

    def __post_init__(self):
        self._resolve_model_defaults()
        if not self.workdir:
            dataset = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.dataset).strip("_")
            object.__setattr__(self, "workdir", os.path.join("runs", f"{self.model}_{dataset}"))
        for name in ("image_size", "batch_size", "epochs", "latent_dim", "base_filters", "num_samples",
                     "steps_per_execution", "r1_batch_shrink"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.image_size not in (32, 64):
            raise UsageError(f"image_size must be 32 or 64, got {self.image_size}")
        if self.steps_per_epoch < 0:
            raise UsageError(f"steps_per_epoch must be >= 0, got {self.steps_per_epoch}")
        if not 0 < self.learning_rate < math.inf:
            raise UsageError(f"learning_rate must be a positive finite number, got {self.learning_rate}")
        if not 0 <= self.beta_1 < 1:
            raise UsageError(f"beta_1 must be in [0, 1), got {self.beta_1}")
        if not 0 <= self.lr_decay <= 1:
            raise UsageError(f"lr_decay must be in [0, 1] (a share of the run; 0: constant), got {self.lr_decay}")
        if self.likelihood not in LIKELIHOODS:
            raise UsageError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}")
        if not 0 <= self.kl_weight < math.inf:
            raise UsageError(f"kl_weight must be a finite number >= 0, got {self.kl_weight}")
        parse_interval(self.checkpoint_every)
        if self.keep_checkpoints < 1:
            raise UsageError(f"keep_checkpoints must be a positive integer, got {self.keep_checkpoints}")
        if self.iw_samples < 0:
            raise UsageError(f"iw_samples must be >= 0, got {self.iw_samples}")
        for name in ("ema_kimg", "ema_rampup", "r1_gamma", "class_loss"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.r1_batch_shrink > 1 and not self.r1_gamma:
            raise UsageError(f"r1_batch_shrink={self.r1_batch_shrink} shrinks the R1 penalty's batch, which is off: "
                             "set r1_gamma > 0 as well")
        augment.parse_policy(self.diffaugment)
        if self.d_norm not in D_NORMS:
            raise UsageError(f"d_norm must be one of {', '.join(D_NORMS)}, got {self.d_norm!r}")
        if self.eval_every is not None and self.eval_every < 0:
            raise UsageError(f"eval_every must be >= 0 (0: off), got {self.eval_every}")
        if self.eval_samples < 2:
            raise UsageError(f"eval_samples must be at least 2, got {self.eval_samples}")
        if self.features not in FEATURE_NETWORKS:
            raise UsageError(f"features must be one of {', '.join(FEATURE_NETWORKS)}, got {self.features!r}")

    def _resolve_model_defaults(self):
        """Fields left at None take the registered model's config_defaults, else MODEL_DEFAULTS: the same
        for zoo.Config(model="vae") in Python as for train.py --model=vae."""
        from zoo import models  # noqa: F401  registers the models; imported late, as models import zoo modules
        from zoo.registry import MODELS

        model_defaults = {**MODEL_DEFAULTS, **MODELS.get(self.model).config_defaults}
        for name, value in model_defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """The Config a JSON object holds; a UsageError for anything else (a hand-edited file, say)."""
        try:
            values = json.loads(text)
        except ValueError as error:
            raise UsageError(f"not valid JSON ({error})") from None
        if not isinstance(values, dict):
            raise UsageError(f"expected a JSON object of settings, got {type(values).__name__}")
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise UsageError(f"unknown config keys {unknown}; known: {sorted(fields)}")
        for name, value in values.items():
            if not _has_type(value, fields[name]):
                allowed = " or ".join(_JSON_NAMES[t] for t in _types(fields[name]))
                raise UsageError(f"{name} must be {allowed}, got {json.dumps(value)}")
        return cls(**values)

    @classmethod
    def read(cls, path):
        """The Config saved in `path` (a run's config.json); errors name the file."""
        try:
            with open(path) as f:
                return cls.from_json(f.read())
        except UsageError as error:
            raise UsageError(f"{path}: {error}; fix or delete that file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"{path} cannot be read ({error})") from None


_JSON_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}


def _types(annotation):
    return typing.get_args(annotation) or (annotation,)


def _has_type(value, annotation):
    """JSON's view of the field types: a bool is not a number, an integer is a float."""
    types = _types(annotation)
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)
