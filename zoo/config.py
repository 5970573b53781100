"""The one configuration of a run: built from flags, saved with the run, passed inward."""
import dataclasses
import json
import os
import re
from typing import Optional

from zoo.errors import UsageError

LIKELIHOODS = ("auto", "bernoulli", "logistic")


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "dcgan"
    dataset: str = "shapes"
    image_size: int = 32
    batch_size: int = 64
    epochs: int = 20
    steps_per_epoch: int = 0  # 0: one pass over the training split
    latent_dim: int = 100
    base_filters: int = 32  # width of the networks' first/last convolution
    learning_rate: float = 2e-4
    beta_1: float = 0.5
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
    # speed (issue 11)
    steps_per_execution: int = 16  # train steps per call from the host: one host sync (and callback) each

    def __post_init__(self):
        if not self.workdir:
            dataset = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.dataset).strip("_")
            object.__setattr__(self, "workdir", os.path.join("runs", f"{self.model}_{dataset}"))
        for name in ("image_size", "batch_size", "epochs", "latent_dim", "base_filters", "num_samples",
                     "steps_per_execution"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.image_size not in (32, 64):
            raise UsageError(f"image_size must be 32 or 64, got {self.image_size}")
        if self.steps_per_epoch < 0:
            raise UsageError(f"steps_per_epoch must be >= 0, got {self.steps_per_epoch}")
        if not self.learning_rate > 0:
            raise UsageError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.beta_1 < 1:
            raise UsageError(f"beta_1 must be in [0, 1), got {self.beta_1}")
        if self.likelihood not in LIKELIHOODS:
            raise UsageError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}")
        if not self.kl_weight >= 0:
            raise UsageError(f"kl_weight must be >= 0, got {self.kl_weight}")
        if self.iw_samples < 0:
            raise UsageError(f"iw_samples must be >= 0, got {self.iw_samples}")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        values = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown config keys {unknown}; known: {sorted(known)}")
        return cls(**values)
