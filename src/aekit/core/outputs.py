"""Small frozen output records shared by every family (as diffusers does for its autoencoders)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class AEOutput:
    """What a model's ``forward`` returns.

    Attributes
    ----------
    z : Tensor, (B, K)
        The code (for a VAE, a sample of q(z|x)).
    x_hat : Tensor, same shape as the input
        The reconstruction in the model's data space (after the output non-linearity).
    logits : Tensor or None
        Pre-sigmoid decoder output when the output is Bernoulli, so the loss can use the stable
        ``binary_cross_entropy_with_logits``.
    mu, logvar : Tensor or None, (B, K)
        Gaussian posterior parameters (variational families).
    x_in : Tensor or None, same shape as the input
        The input the encoder saw: the corrupted batch when the training loop corrupts it. A penalty
        on the encoder (the contractive one) is taken there, not at the clean target.
    extras : dict
        Anything else a family's loss needs (e.g. pre-activations, class logits).
    """

    z: Tensor
    x_hat: Tensor
    logits: Tensor | None = None
    mu: Tensor | None = None
    logvar: Tensor | None = None
    x_in: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class LossOutput:
    """A loss total and its named, already weighted terms (``total == sum(terms.values())``).

    Every term is logged by name, so a penalty that is silently zero or of the wrong sign is visible
    in ``history.csv``.
    """

    total: Tensor
    terms: dict[str, Tensor]
