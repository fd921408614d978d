"""The age and gender network: a small ResNet with two heads.

Plain 3×3 convolutions train and run faster per FLOP on CPUs than depthwise
MobileNet blocks (measured here: 2-3× more images per second at equal
accuracy-relevant width), and they map well to TensorRT FP16 kernels.
"""

from __future__ import annotations

import torch
from torch import nn

from analyzer.datasets.head_outline import head_alpha


def _conv_bn_relu(inputs: int, outputs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with an identity (or 1×1 strided) shortcut."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(inputs, outputs, stride),
            nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False),
            nn.BatchNorm2d(outputs),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if stride == 1 and inputs == outputs
            else nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))
        )
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum."""
        return self.activation(self.body(x) + self.shortcut(x))


class HeadOutline(nn.Module):
    """Sets every chip pixel outside a head outline to mid-grey (0 after normalisation).

    The chip's corners hold the backdrop (the photo's, the shop's), which says
    nothing about age or gender; masked in training and in the exported graph
    alike, the network cannot learn to rely on it.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.reshape(1, 1, *mask.shape[-2:]).float().clone())

    @classmethod
    def superellipse(cls, size: int, power: float) -> HeadOutline:
        """The outline the simulator and the training backdrops draw heads with (power 2: an ellipse)."""
        return cls(torch.from_numpy(head_alpha(size, size, power)))

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """The masked chips."""
        return chips * self.mask


class AgeGenderNet(nn.Module):
    """Logits for fine age bins and for gender (female, male).

    Each stage halves the resolution, so a 64-112 px chip ends at 2-4 px
    before global pooling.

    Example:
        >>> net = AgeGenderNet(age_bins=101)
        >>> age_logits, gender_logits = net(torch.zeros(2, 3, 80, 80))
        >>> tuple(age_logits.shape), tuple(gender_logits.shape)
        ((2, 101), (2, 2))
    """

    def __init__(
        self,
        age_bins: int,
        stem: int = 24,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (1, 2, 2, 1),
        dropout: float = 0.1,
        outline: HeadOutline | None = None,
    ) -> None:
        super().__init__()
        self.outline: nn.Module = outline if outline is not None else nn.Identity()
        layers: list[nn.Module] = [_conv_bn_relu(3, stem, stride=2)]
        channels = stem
        for width, count in zip(widths, blocks, strict=True):
            for index in range(count):
                layers.append(BasicBlock(channels, width, stride=2 if index == 0 else 1))
                channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.age_head = nn.Linear(channels, age_bins)
        self.gender_head = nn.Linear(channels, 2)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for block in self.modules():
            if isinstance(block, BasicBlock):
                nn.init.zeros_(block.body[2].weight)  # start each residual branch at zero

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's globally pooled features of (masked) chips."""
        return self.features(self.outline(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Age and gender logits."""
        features = self.dropout(self.pooled(x))
        return self.age_head(features), self.gender_head(features)


class ProbabilityModel(nn.Module):
    """What gets exported: softmax probabilities, averaged over the chip and its mirror.

    The mirror average costs a second pass and gains a few tenths of a point of
    gender accuracy; the template is symmetric, so the mirror is a valid chip.
    """

    def __init__(self, net: AgeGenderNet, mirror_average: bool = True) -> None:
        super().__init__()
        self.net = net
        self.mirror_average = mirror_average

    def forward(self, chips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``age_probs`` (N, bins) and ``gender_probs`` (N, 2)."""
        if self.mirror_average:
            count = chips.shape[0]
            age_logits, gender_logits = self.net(torch.cat([chips, torch.flip(chips, dims=[3])]))
            age = torch.softmax(age_logits, dim=1)
            gender = torch.softmax(gender_logits, dim=1)
            return (age[:count] + age[count:]) * 0.5, (gender[:count] + gender[count:]) * 0.5
        age_logits, gender_logits = self.net(chips)
        return torch.softmax(age_logits, dim=1), torch.softmax(gender_logits, dim=1)


class ProbabilityEnsemble(nn.Module):
    """Several training runs in one graph: the mean of their probabilities.

    Two runs of the same recipe with different seeds make different mistakes;
    their mean beats either (measured: docs in engines/MODEL_CARD.md) for
    twice the compute, which stays small because only a few crops per visitor
    are classified.
    """

    def __init__(self, members: list[ProbabilityModel]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, chips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``age_probs`` (N, bins) and ``gender_probs`` (N, 2), averaged over the members."""
        outputs = [member(chips) for member in self.members]
        count = float(len(outputs))
        age = torch.stack([age for age, _ in outputs]).sum(dim=0) / count
        gender = torch.stack([gender for _, gender in outputs]).sum(dim=0) / count
        return age, gender


def exportable_model(nets: list[AgeGenderNet]) -> ProbabilityModel | ProbabilityEnsemble:
    """What ``analyzer export`` writes for these runs, in eval mode: each mirror-averaged, several averaged."""
    members = [ProbabilityModel(net, mirror_average=True) for net in nets]
    return (members[0] if len(members) == 1 else ProbabilityEnsemble(members)).eval()


class LikenessModel(nn.Module):
    """The network's pooled trunk features as a unit vector: the tracker's face likeness cue.

    Trained only for age and gender, so it says how alike two faces look,
    not who someone is; it separates the faces a tracker confuses (someone
    else stepping into a hidden shopper's place) well enough for that.
    """

    def __init__(self, net: AgeGenderNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """(N, C) unit vectors."""
        return nn.functional.normalize(self.net.pooled(chips), dim=1)


def model_size(net: nn.Module, input_size: int) -> tuple[int, int]:
    """Parameters and multiply-accumulates for one chip (one pass, without the mirror pass)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, input_size, input_size))
    net.train(was_training)
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() // 2
