"""Semi-supervised autoencoder: encoder, decoder and a classifier on the code, trained on labelled and
unlabelled data together, with a consistency term (pseudo-labels under random shifts, virtual
adversarial, or noise), a class-balance term and an entropy term on the unlabelled.

K. Sohn et al., "FixMatch: simplifying semi-supervised learning with consistency and confidence", NeurIPS
2020 (confidence-thresholded pseudo-labels of one view as targets for another); D. Berthelot et al.,
"ReMixMatch", ICLR 2020 (distribution alignment); T. Miyato, S. Maeda, M. Koyama and S. Ishii, "Virtual
adversarial training: a regularization method for supervised and semi-supervised learning", IEEE TPAMI 41
(2019), arXiv:1704.03976; Y. Grandvalet and Y. Bengio, "Semi-supervised learning by entropy minimization",
NIPS 17 (2005); S. Laine and T. Aila, "Temporal ensembling for semi-supervised learning", ICLR 2017 (the
Pi-model, the ramp-up of the consistency weight); A. Rasmus, H. Valpola, M. Honkala, M. Berglund and
T. Raiko, "Semi-supervised learning with Ladder networks", NeurIPS 2015 (a classifier and a decoder
sharing one encoder); D. P. Kingma, D. J. Rezende, S. Mohamed and M. Welling, "Semi-supervised learning
with deep generative models", NeurIPS 2014 (the benchmark setting).

An encoder f, a decoder g and a classifier head c on the code give p(y|x) = softmax(c(f(x))). With L the
labelled samples (y_n != -1), U all the samples, T(x) a random shift of x by up to ``translation``
pixels (images; the identity for other data) and pi the class frequencies of the labels, the model
solves::

    min_{f, g, c}   w_cls * E_{(x, y) ~ L} [ -log p(y|T(x)) ]                      "classification"
                  + w_rec * E_{x ~ U} [ L_rec(x, g(f(x))) ]                        "reconstruction"
                  + w_con * ramp(t) * E_{x ~ U} [ C(x) ]                           "consistency"
                  + w_ent * E_{x ~ U} [ H(p(.|x)) ]                                "entropy"
                  + w_bal * KL( E_{x ~ batch} [ p(.|x) ] || pi )                   "balance"

- L_rec is the Bernoulli negative log-likelihood (data in [0, 1]) or the squared error, summed over the
  D features of a sample; ``reconstruction_weight="auto"`` is 1 / D, so that the term counts as much as
  one cross-entropy whatever the input size. It shapes the code by the data, labelled or not.
- The consistency term C carries the labels along the clusters of the unlabelled data (the cluster
  assumption). ``consistency="pseudo-label"``: C(x) = 1[max_k p(k|x) >= tau] * (-log p(argmax_k p(k|x) | T(x))),
  the classifier's own confident prediction on x (held fixed) taught to the shifted view, tau =
  ``confidence_threshold``. ``"vat"``: C(x) = KL(p(.|x) || p(.|x + r(x))), r the virtual adversarial
  perturbation of L2 norm ``epsilon`` (:func:`aekit.core.losses.virtual_adversarial_kl`). ``"noise"``:
  the same KL with r = T(x) - x plus isotropic Gaussian noise of standard deviation ``epsilon`` (the
  Pi-model). ``"none"`` leaves the term out.
- ramp(t) = exp(-5 (1 - t)^2) with t = epoch / (``consistency_rampup`` * max_epochs), 1 once t >= 1: a
  classifier that has not yet fitted the labels gives targets that are mostly noise.
- The balance term is the collapse guard: without it a consistency term is also minimized by pulling
  the unlabelled data onto few classes (40 epochs of VAT alone ended at 69 % MNIST test error with the
  100 labels fitted exactly). It is 0 when the batch's mean prediction has the labels' class frequencies.
- The entropy term (Grandvalet and Bengio) pushes the decision boundary into the low-density regions
  between clusters; Miyato et al. use it with VAT ("VAT+EntMin"), with w_con = w_ent = 1.
- ``batch_norm`` normalizes every hidden layer of the encoder, as the networks of these methods do. In
  the pseudo-label step the shifted labelled and unlabelled samples go through the classifier as one
  batch, so that they share batch statistics.

Every training step sees labels: besides the minibatch of all samples that the training loop draws
(the U terms), the module draws ``labelled_batch_size`` labelled samples with replacement (the L term),
so that 100 labels among 60,000 images are used at every step, not once per 600. A validation pass
scores the labelled samples of the validation batch instead (those samples are also in the pool the
steps draw from, so the validation loss is not a held-out classification error).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.core.losses import categorical_entropy, categorical_kl, reconstruction, virtual_adversarial_kl
from aekit.core.nets import ConvEncoder, apply_output, mlp
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import AUTO, Auto, Explain, Interval
from aekit.data.corruption import check_translation, random_translate
from aekit.data.preprocessing import UNLABELLED, check_labels
from aekit.engine.state import TrainState
from aekit.engine.training import Callback, TrainConfig
from aekit.families.autoencoder import Autoencoder, AutoencoderConfig, HiddenDims
from aekit.model.base import DataInfo, declare_params
from aekit.model.classifier import ClassifierMixin
from aekit.model.registry import register

CONSISTENCIES = ("pseudo-label", "vat", "noise", "none")


@dataclass
class SemiSupervisedConfig:
    """Hyperparameters of the classifier and of the four loss terms."""

    # The classes the classifier predicts; "auto" takes those of the labelled samples. Naming them
    # checks that each has at least one label, so none is silently left out of the classifier.
    classes: Annotated[
        tuple[int, ...] | Literal["auto"],
        Auto("the distinct labels of the labelled samples", from_data=True),
        Explain("the class labels the classifier predicts", "give every class that has a labelled sample"),
    ] = "auto"
    # Batch normalization after every hidden layer of the encoder: the networks of the consistency methods
    # (Laine and Aila, Miyato et al., Sohn et al.) all use it; it keeps the classifier's inputs on a scale that
    # the pseudo-labels cannot drift.
    batch_norm: bool = True
    # Hidden widths of the classifier head on the code; none: a softmax layer on the code.
    classifier_dims: HiddenDims = ()
    # Labelled samples drawn (with replacement) at every step; Miyato et al. use 32 beside 128 unlabelled.
    labelled_batch_size: Annotated[int, Interval(1), Explain("labelled samples per training step")] = 32
    # The cross-entropy on the labelled samples.
    classification_weight: Annotated[
        float, Interval(0, closed="neither"), Explain("the weight of the cross-entropy on the labelled samples")
    ] = 1.0
    # The reconstruction of every sample; 1 / D makes it count as one cross-entropy for any input size.
    reconstruction_weight: Annotated[
        float | Literal["auto"],
        Interval(0),
        Auto("1 / n_features: the reconstruction per feature", from_data=True),
        Explain("the weight of the reconstruction term", "use 0 to train the classifier alone"),
    ] = "auto"
    # How the classifier is made consistent on the unlabelled samples (see the module docstring).
    consistency: Literal["pseudo-label", "vat", "noise", "none"] = "pseudo-label"
    consistency_weight: Annotated[float, Interval(0), Explain("the weight of the consistency term")] = 1.0  # Miyato et al.'s and Sohn et al.'s 1
    # The consistency weight rises as exp(-5 (1 - t)^2), t = epoch / (consistency_rampup * max_epochs), then
    # stays at consistency_weight (Laine and Aila ramp over 80 of 300 epochs): a classifier that has not yet
    # fitted the labels gives targets that are mostly noise.
    consistency_rampup: Annotated[
        float, Interval(0, 1, closed="left"),
        Explain("the fraction of max_epochs over which the consistency weight ramps up", "use 0 for no ramp-up"),
    ] = 0.2
    # Pseudo-labels: an unlabelled sample counts only where the classifier's confidence on it reaches this:
    # wrong confident labels are what a collapse feeds on. FixMatch uses 0.95; on MNIST with 100 labels
    # (10,000 images, 10 epochs, conv encoder) 0.8 reached 5.2 % test error against 6.2 % for 0.95.
    confidence_threshold: Annotated[
        float, Interval(0, 1, closed="right"),
        Explain("the confidence an unlabelled sample needs to get a pseudo-label"),
    ] = 0.8
    # Random shifts of up to this many pixels of every labelled sample and of the consistency term's second
    # view (images only): digits stay digits under a shift of 2 pixels, and a classifier trained to agree
    # with itself across shifts learns what 100 labels cannot show it. "auto": 2 for images (C, H, W) whose
    # sides are 16 pixels or more, 1 for smaller ones, 0 for other data.
    translation: Annotated[
        int | Literal["auto"], Interval(0),
        Auto("2 pixels for images of side 16 or more, 1 for smaller images, 0 for other data", from_data=True),
        Explain("the largest random shift in pixels", "use 0 for no shifts"),
    ] = "auto"
    # The collapse guard: KL(mean_batch p(y|x) || class frequencies of the labels) keeps the predictions of a
    # batch spread over the classes as the labels are (distribution alignment, Berthelot et al. 2020).
    balance_weight: Annotated[
        float, Interval(0), Explain("the weight of the class-balance term", "use 0 to turn it off")
    ] = 1.0
    # The perturbation's size in the units of the scaled data: the L2 norm of the VAT perturbation of a
    # sample, or the noise's standard deviation per feature (vat and noise only). 1.0 is a small change of a 784-pixel digit in
    # [0, 1] (norms near 9); set it to a fraction of the distance between classes for other data.
    epsilon: Annotated[
        float, Interval(0, closed="neither"),
        Explain("the size of the consistency perturbation", "use a fraction of the distance between classes"),
    ] = 1.0
    # The entropy of p(y|x) on every sample (entropy minimization). Off by default: on runs of a few to
    # fifteen epochs it made the classifier confident too early and lowered accuracy (digits, 2 labels a
    # class: 0.68 against 0.79); Miyato et al.'s "VAT+EntMin" uses 1 over much longer training.
    entropy_weight: Annotated[float, Interval(0), Explain("the weight of the entropy term", "use 0 to turn it off")] = 0.0


class BatchNorm1d(nn.BatchNorm1d):
    """torch's batch normalization, except that a training batch of one sample (the last of an epoch) is
    normalized with the running statistics instead of failing for want of a batch variance."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def with_batch_norm(net: nn.Sequential) -> nn.Sequential:
    """``net`` with a batch normalization after every linear or convolutional layer that an activation follows."""
    layers = list(net)
    out: list[nn.Module] = []
    for i, layer in enumerate(layers):
        out.append(layer)
        followed = i + 1 < len(layers) and not isinstance(layers[i + 1], (nn.Linear, nn.Conv1d, nn.Conv2d))
        if followed and isinstance(layer, nn.Linear):
            out.append(BatchNorm1d(layer.out_features))
        elif followed and isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            out.append((nn.BatchNorm2d if isinstance(layer, nn.Conv2d) else BatchNorm1d)(layer.out_channels))
    return nn.Sequential(*out)


def rampup(t: float) -> float:
    """The ramp of Laine and Aila: exp(-5 (1 - t)^2) for t in [0, 1), 1 from t = 1 on."""
    return 1.0 if t >= 1.0 else math.exp(-5.0 * (1.0 - max(t, 0.0)) ** 2)


class SemiSupervisedModule(nn.Module):
    """Encoder f, decoder g, classifier head c, and the labelled pool that every training step draws from.

    Shapes: x (B, *sample_shape), z = encode(x) (B, K), class_logits(z) (B, n_classes). The pool
    (``set_labelled``) is held in buffers that are not saved: it is training data, not a weight. The
    ramp of the consistency weight is a buffer, changed in place by :class:`ConsistencyRampup`.
    """

    pool_x: Tensor  # (n_labelled, *sample_shape)
    pool_y: Tensor  # (n_labelled,) int64 class indices
    prior: Tensor  # (n_classes,) class frequencies of the pool
    ramp: Tensor  # () the factor of the consistency weight

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, head: nn.Module, output: str, loss: str,
        weights: Mapping[str, float], consistency: str, epsilon: float, labelled_batch_size: int,
        translation: int = 0, threshold: float = 0.95,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head
        self.output, self.loss_kind = output, loss
        self.weights = {k: float(v) for k, v in weights.items()}
        self.consistency, self.epsilon, self.labelled_batch_size = consistency, float(epsilon), int(labelled_batch_size)
        self.translation, self.threshold = int(translation), float(threshold)
        # fit_module passes the batch's labels to ``loss`` when this is set.
        self.uses_labels = True
        self.register_buffer("pool_x", torch.empty(0), persistent=False)
        self.register_buffer("pool_y", torch.empty(0, dtype=torch.int64), persistent=False)
        self.register_buffer("prior", torch.empty(0), persistent=False)
        self.register_buffer("ramp", torch.tensor(1.0))

    def set_labelled(self, X: np.ndarray | None, y: np.ndarray | None, n_classes: int = 0) -> None:
        """Hold the labelled samples X (n_l, *sample_shape) with class indices y (n_l,) in [0, n_classes);
        None empties the pool."""
        dev = self.pool_x.device
        if X is None or y is None:
            self.pool_x, self.pool_y = torch.empty(0, device=dev), torch.empty(0, dtype=torch.int64, device=dev)
            self.prior = torch.empty(0, device=dev)
            return
        self.pool_x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(dev)
        self.pool_y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(dev)
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float32)
        self.prior = torch.from_numpy(counts / counts.sum()).to(dev)

    def shift(self, x: Tensor) -> Tensor:
        """``x`` randomly translated (images only, and only with ``translation`` > 0)."""
        return random_translate(x, self.translation) if self.translation and x.dim() == 4 else x

    def encode(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, K)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """(B, K) -> (B, *sample_shape), in data space."""
        return apply_output(self.output, self.decoder(z))

    def class_logits(self, z: Tensor) -> Tensor:
        """(B, K) -> (B, n_classes)."""
        return self.head(z)

    def classify(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, n_classes) logits of p(y|x)."""
        return self.head(self.encoder(x))

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        raw = self.decoder(z)
        return AEOutput(
            z=z, x_hat=apply_output(self.output, raw), logits=raw if self.output == "sigmoid" else None, x_in=x,
            extras={"class_logits": self.head(z)},
        )

    def _classification(self, out: AEOutput, y: Tensor | None, student: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Mean cross-entropy: on a labelled batch drawn from the pool (and shifted) while training (its
        logits and labels given as ``student`` when already computed), else on the labelled samples of
        this batch (0 when it has none)."""
        if self.training and self.pool_y.numel():
            if student is not None:
                return F.cross_entropy(*student)
            idx = torch.randint(self.pool_y.numel(), (self.labelled_batch_size,), device=self.pool_y.device)
            return F.cross_entropy(self.classify(self.shift(self.pool_x[idx])), self.pool_y[idx])
        logits = out.extras["class_logits"]
        if y is None:
            return logits.new_zeros(())
        n_labelled = (y != UNLABELLED).sum().clamp(min=1)
        return F.cross_entropy(logits, y, ignore_index=UNLABELLED, reduction="sum") / n_labelled

    def _consistency(self, x: Tensor, logits: Tensor, student: Tensor | None = None) -> Tensor:
        if self.consistency == "vat":
            return virtual_adversarial_kl(self.classify, x, logits, self.epsilon).mean()
        if self.consistency == "noise":
            return categorical_kl(logits.detach(), self.classify(self.shift(x) + self.epsilon * torch.randn_like(x))).mean()
        if self.consistency == "pseudo-label":
            target = logits.detach()
            confidence, label = F.softmax(target, dim=1).max(dim=1)
            kept = (confidence >= self.threshold).to(target.dtype)  # (B,)
            pred = student if student is not None else self.classify(self.shift(x))
            return (F.cross_entropy(pred, label, reduction="none") * kept).mean()
        return logits.new_zeros(())

    def _balance(self, logits: Tensor) -> Tensor:
        """KL(mean_b p(.|x_b) || prior): 0 when the batch's mean prediction has the labels' class frequencies."""
        prior = self.prior if self.prior.numel() else torch.full_like(logits[0], 1.0 / logits.shape[1])
        mean = F.softmax(logits, dim=1).mean(dim=0).clamp_min(1e-12)  # (C,)
        return (mean * (mean.log() - prior.clamp_min(1e-12).log())).sum()

    def loss(self, x: Tensor, out: AEOutput, y: Tensor | None = None) -> LossOutput:
        w = self.weights
        logits = out.extras["class_logits"]
        x_in = out.x_in if out.x_in is not None else x
        labelled_student: tuple[Tensor, Tensor] | None = None
        unlabelled_student: Tensor | None = None
        if self.training and self.pool_y.numel() and self.consistency == "pseudo-label" and w["consistency"]:
            # One pass over the shifted labelled and unlabelled samples together, so that a normalized layer
            # sees the same batch statistics for both (as FixMatch does).
            idx = torch.randint(self.pool_y.numel(), (self.labelled_batch_size,), device=self.pool_y.device)
            both = self.classify(self.shift(torch.cat([self.pool_x[idx], x_in])))  # (B_l + B, n_classes)
            labelled_student, unlabelled_student = (both[: idx.numel()], self.pool_y[idx]), both[idx.numel():]
        terms = {"classification": w["classification"] * self._classification(out, y, labelled_student)}
        if w["reconstruction"]:
            terms["reconstruction"] = w["reconstruction"] * reconstruction(self.loss_kind, x, out.x_hat, out.logits).mean()
        if w["consistency"] and self.consistency != "none":
            terms["consistency"] = w["consistency"] * self.ramp * self._consistency(x_in, logits, unlabelled_student)
        if w["entropy"]:
            terms["entropy"] = w["entropy"] * categorical_entropy(logits).mean()
        if w["balance"]:
            terms["balance"] = w["balance"] * self._balance(logits)
        return LossOutput(sum(terms.values()), terms)  # type: ignore[arg-type]


class ConsistencyRampup(Callback):
    """Sets the module's ``ramp`` to :func:`rampup` (epoch / ramp epochs) at each epoch's start and logs it
    as the history column ``consistency_ramp``. While it rises the losses of successive epochs weigh the
    consistency differently and do not compare, so early stopping starts counting after the ramp-up."""

    def __init__(self, epochs: float) -> None:
        self.epochs = float(epochs)

    def factor(self, epoch: int) -> float:
        return 1.0 if self.epochs <= 0 else rampup(epoch / self.epochs)

    def on_epoch_begin(self, state: TrainState) -> None:
        module: Any = state.module
        module.ramp.fill_(self.factor(state.epoch))

    def on_epoch_end(self, state: TrainState) -> None:
        module: Any = state.module
        f = float(module.ramp)
        state.history[-1]["consistency_ramp"] = f
        if f < 1.0:
            state.best_val, state.best_epoch, state.bad_epochs, state.best_state = math.inf, -1, 0, None


def _normalized(encoder: nn.Module) -> nn.Module:
    """The encoder of :func:`aekit.core.nets.build_encoder_decoder` with batch normalization in its hidden
    layers (mlp: the linear stack; conv: the convolution stack); any other encoder is returned as it is."""
    if isinstance(encoder, ConvEncoder):
        encoder.convs = with_batch_norm(encoder.convs)
    elif isinstance(encoder, nn.Sequential) and len(encoder) == 2 and isinstance(encoder[1], nn.Sequential):
        encoder[1] = with_batch_norm(encoder[1])
    return encoder


@register(
    "semi-supervised",
    "encoder, decoder and a classifier on the code, trained on labelled and unlabelled data (-1) together: "
    "cross-entropy, reconstruction, ramped-up consistency (pseudo-labels under shifts, VAT or noise), class balance, "
    "entropy minimization",
    capabilities=("gradient", "images", "labels"),
)
@declare_params(AutoencoderConfig, SemiSupervisedConfig, TrainConfig)
class SemiSupervisedAutoencoder(ClassifierMixin, Autoencoder):
    """Semi-supervised autoencoder, scikit-learn style: a classifier learnt from few labels and many
    unlabelled samples (see the module docstring for the objective).

    Parameters
    ----------
    classes, batch_norm, classifier_dims, labelled_batch_size, classification_weight, reconstruction_weight,
    consistency, consistency_weight, consistency_rampup, confidence_threshold, translation, balance_weight,
    epsilon, entropy_weight
        See :class:`SemiSupervisedConfig`.
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, scaling
        The encoder and decoder, see :class:`aekit.families.autoencoder.AutoencoderConfig`.
    max_epochs, batch_size, learning_rate, ..., random_state, verbose
        See :class:`aekit.engine.training.TrainConfig`. An epoch is a pass over all samples (the
        unlabelled terms); each of its steps also draws ``labelled_batch_size`` labelled samples.

    Attributes
    ----------
    classes_ : ndarray of int, (n_classes,)
        The class labels, the columns of :meth:`predict_proba`.
    history_ : list of dict
        One row per epoch with the loss terms by name: ``classification``, ``reconstruction``,
        ``consistency``, ``entropy``, ``balance`` (each already weighted, the consistency with its ramp; a
        term of weight 0 is left out), and ``consistency_ramp``, the ramp's factor in that epoch.

    Notes
    -----
    ``fit(X, y)`` needs ``y`` of shape (n_samples,): integer labels, -1 for an unlabelled sample (as in
    :mod:`sklearn.semi_supervised`), with at least one labelled sample of each of two classes or more.
    ``predict``, ``predict_proba`` and ``score(X, y)`` (accuracy) come from
    :class:`aekit.model.classifier.ClassifierMixin`; ``transform`` gives the codes.

    Examples
    --------
    >>> import numpy as np, aekit
    >>> ds = aekit.load_dataset("digits")                             # X (1437, 1, 8, 8), y (1437,)
    >>> y = np.where(np.arange(len(ds.y)) % 10 == 0, ds.y, -1)       # one label in ten
    >>> ssae = aekit.SemiSupervisedAutoencoder(max_epochs=3, verbose=0, random_state=0).fit(ds.X, y)
    >>> ssae.predict(ds.X[:3]).shape, ssae.predict_proba(ds.X[:3]).shape
    ((3,), (3, 10))
    """

    _presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        # The recipe of benchmarks/bench_semisupervised.py: 2.72, 3.41 and 2.50 % test error on MNIST with 100 labels in 12 epochs (three seeds)
        # (benchmarks/RESULTS.md). A conv encoder (32, 64 channels, batch-normalized) and a 64-unit code; no
        # validation split (a few labels are too precious to hold out) and a fixed epoch count with cosine decay.
        "few-labels": {"architecture": "conv", "hidden_dims": (32, 64), "latent_dim": 64, "lr_schedule": "cosine",
                       "max_epochs": 12, "validation_fraction": 0.0, "patience": None},
    }
    _test_params: ClassVar[dict[str, Any]] = {
        "hidden_dims": (16,), "latent_dim": 4, "max_epochs": 2, "batch_size": 32, "labelled_batch_size": 8,
        "verbose": 0, "random_state": 0,
    }
    _test_variants: ClassVar[tuple[dict[str, Any], ...]] = (
        {"consistency": "noise", "classifier_dims": (8,), "reconstruction_weight": 0.0, "entropy_weight": 0.0,
         "batch_norm": False, "consistency_rampup": 0.0, "balance_weight": 0.0},
    )

    # ------------------------------------------------------------------ parameters

    def _check_params(self) -> None:
        super()._check_params()
        if self.classes != AUTO:
            classes = list(self.classes)
            if UNLABELLED in classes:
                raise ValueError(
                    f"classes={tuple(classes)} holds {UNLABELLED}, which marks an unlabelled sample and cannot be a "
                    "class; encode the classes as other integers, or use classes='auto'"
                )
            if len(set(classes)) != len(classes):
                raise ValueError(f"classes={tuple(classes)} names a class twice; give each class once")

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        """The autoencoder's choices, the classes (those of ``data``) and the reconstruction weight (1 / D)."""
        r = super().resolve(params, data)
        if data.classes is not None:
            r["classes"] = tuple(int(c) for c in data.classes)
        if r["reconstruction_weight"] == AUTO:
            r["reconstruction_weight"] = 1.0 / math.prod(data.sample_shape)
        if r["translation"] == AUTO:
            shape = data.sample_shape
            r["translation"] = 0 if len(shape) != 3 else min(2 if min(shape[1:]) >= 16 else 1, (min(shape[1:]) - 1) // 2)
        else:
            check_translation(r["translation"], tuple(data.sample_shape))
        return r

    # ------------------------------------------------------------------ labels

    def _classes_of(self, y: Any, n: int) -> tuple[int, ...]:
        """The classes of the classifier: those of the labelled samples of ``y``, checked against
        ``classes`` when it names them. A ValueError names the problem and the fix."""
        name = type(self).__name__
        if y is None:
            raise ValueError(
                f"{name} learns from labels: call fit(X, y) with y of shape ({n},), integer labels with "
                f"{UNLABELLED} for each unlabelled sample; for unlabelled data alone use aekit.Autoencoder"
            )
        labels = check_labels(y, n)
        seen = self._labelled_classes(labels, n)
        if seen is None:
            raise ValueError(
                f"y has no labelled sample: all {n} labels are {UNLABELLED} (unlabelled); label at least one "
                f"sample of each class, or use aekit.Autoencoder for unlabelled data alone"
            )
        if self.classes == AUTO:
            if len(seen) < 2:
                counts = int((labels != UNLABELLED).sum())
                raise ValueError(
                    f"the labelled samples of y hold 1 class ({seen[0]}, {counts} labelled sample(s)); a classifier "
                    "needs at least two: label at least one sample of another class"
                )
            return seen
        wanted = tuple(sorted(int(c) for c in self.classes))
        missing = sorted(set(wanted) - set(seen))
        if missing:
            raise ValueError(
                f"classes {missing} of classes={tuple(self.classes)} have no labelled sample in y; label at least "
                "one sample of each class, or leave them out of classes"
            )
        unknown = sorted(set(seen) - set(wanted))
        if unknown:
            raise ValueError(
                f"y holds labels {unknown[:5]} that are not among classes={tuple(self.classes)}; add them to "
                f"classes, or mark those samples unlabelled ({UNLABELLED})"
            )
        if len(wanted) < 2:
            raise ValueError(f"classes={tuple(self.classes)} names 1 class; a classifier needs at least two")
        return wanted

    def _may_classify(self) -> bool:
        return True

    # ------------------------------------------------------------------ module and training

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        r = self.resolved_
        encoder, decoder = self._networks(sample_shape)
        if r.batch_norm:
            encoder = _normalized(encoder)
        classes = self.data_info_.classes
        head = mlp([int(r.latent_dim), *(int(d) for d in r.classifier_dims), len(classes)], str(r.activation))
        weights = {
            "classification": r.classification_weight, "reconstruction": r.reconstruction_weight,
            "consistency": r.consistency_weight, "entropy": r.entropy_weight, "balance": r.balance_weight,
        }
        return SemiSupervisedModule(
            encoder, decoder, head, r.output, r.loss, weights, r.consistency, r.epsilon, r.labelled_batch_size,
            translation=r.translation, threshold=r.confidence_threshold,
        )

    def _callbacks(self) -> list[Callback]:
        r = self.resolved_
        return [ConsistencyRampup(r.consistency_rampup * r.max_epochs)]

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        labels = self._fit_labels(y, Xs.shape[0])
        assert labels is not None  # _classes_of refuses a fit without labels
        labelled = labels != UNLABELLED
        module: SemiSupervisedModule = self.module_
        module.set_labelled(Xs[labelled], labels[labelled], len(self.data_info_.classes))
        try:
            return super()._fit_module(Xs, y, seed, **fit_kw)
        finally:
            # The pool is training data: the fitted model does not keep it.
            module.set_labelled(None, None)
