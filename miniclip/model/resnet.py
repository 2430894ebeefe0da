"""``ModifiedResNet``: CLIP's ResNet image encoders (RN50, RN101, RN50x4, RN50x16, RN50x64).

Shape legend: N images, R resolution, w width (64 for RN50), E output (embedding) dim.
Channels and sizes through RN50 at R = 224 (w = 64):

    images (N, 3, 224, 224)
    stem: 3x3 conv stride 2 -> 3x3 conv -> 3x3 conv (BN + ReLU each), 2x2 avg pool
                                                  (N, w, 56, 56)
    layer1: 3 Bottlenecks                         (N, 4w, 56, 56)
    layer2: 4 Bottlenecks, the first downsamples  (N, 8w, 28, 28)
    layer3: 6 Bottlenecks, the first downsamples  (N, 16w, 14, 14)
    layer4: 3 Bottlenecks, the first downsamples  (N, 32w, 7, 7)
    attnpool: attention pooling                   (N, E)

The three changes from He et al.'s ResNet, in the original's words: a stem of three
convolutions with an average pool instead of one 7x7 convolution and a max pool;
anti-aliased strided convolutions (an average pool before the stride-1 convolution
instead of a convolution with stride 2, Zhang 2019); and attention pooling instead of the
final global average pool (``nn/attention_pool.py``).
"""

import numpy as np

from .. import ops
from ..nn import AttentionPool2d, BatchNorm2d, Conv2d, Module, ModuleList, conv_bn, init


class Bottleneck(Module):
    """1x1 conv (narrow to ``planes``) -> 3x3 conv -> [avg pool] -> 1x1 conv (widen to 4 planes),
    each followed by BN (and ReLU but the last), plus the shortcut, then ReLU.

    With stride s > 1 both paths shrink by an s x s average pool, never by a strided
    convolution: a stride-2 convolution reads only every other pixel, so a pattern finer than
    the stride aliases into the output; averaging first low-pass filters it. The shortcut is
    ``downsample`` (avg pool, 1x1 conv, BN) whenever the shape changes, else the identity.
    """

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dtype=np.float32, rng=None):
        super().__init__()
        rng = init.as_rng(rng)
        out = planes * self.expansion
        self.stride = stride
        self.conv1 = Conv2d(inplanes, planes, 1, dtype=dtype, rng=rng)
        self.bn1 = BatchNorm2d(planes, dtype=dtype)
        self.conv2 = Conv2d(planes, planes, 3, padding=1, dtype=dtype, rng=rng)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        self.conv3 = Conv2d(planes, out, 1, dtype=dtype, rng=rng)
        self.bn3 = BatchNorm2d(out, dtype=dtype)
        self.downsample = None
        if stride > 1 or inplanes != out:
            self.downsample = Downsample(inplanes, out, stride, dtype, rng)

    def forward(self, x):
        # conv_bn(conv, bn, x, residual, relu) = relu(bn(conv(x)) + residual), one kernel in
        # inference (nn/conv_bn.py); the original reads relu(bn1(conv1(x))), ...
        out = conv_bn(self.conv1, self.bn1, x, relu=True)         # (N, C, H, W) -> (N, planes, H, W)
        out = conv_bn(self.conv2, self.bn2, out, relu=True)       # 3x3, padding 1: same size
        if self.stride > 1:
            out = ops.avg_pool2d(out, self.stride)                # (N, planes, H/s, W/s)
        identity = x if self.downsample is None else self.downsample(x)
        return conv_bn(self.conv3, self.bn3, out, residual=identity, relu=True)   # (N, 4 planes, H/s, W/s)


class Downsample(Module):
    """The shortcut that changes shape: s x s avg pool, 1x1 conv, BN.

    The original's ``nn.Sequential`` names its parts "-1" (the pool, no parameters), "0" (the
    convolution) and "1" (the BN), hence the keys ``downsample.0.weight`` and ``downsample.1.*``.
    """

    def __init__(self, inplanes, out, stride, dtype, rng):
        super().__init__()
        self.stride = stride
        setattr(self, "0", Conv2d(inplanes, out, 1, dtype=dtype, rng=rng))
        setattr(self, "1", BatchNorm2d(out, dtype=dtype))

    def forward(self, x):
        if self.stride > 1:
            x = ops.avg_pool2d(x, self.stride)
        return conv_bn(getattr(self, "0"), getattr(self, "1"), x)


class ModifiedResNet(Module):
    """The original ``ModifiedResNet(layers, output_dim, heads, input_resolution, width)``.

    ``layers`` counts the Bottlenecks of the four stages ((3, 4, 6, 3) for RN50); ``heads``
    the attention-pooling heads (the original passes width * 32 // 64). Init: convolutions
    U(+-1/sqrt(fan_in)) and BNs weight 1, bias 0 (PyTorch's defaults); ``CLIP.initialize_parameters``
    then zeroes every ``bn3.weight``, so each Bottleneck starts as its shortcut.
    """

    def __init__(self, layers, output_dim, heads, input_resolution=224, width=64, dtype=np.float32, rng=None):
        super().__init__()
        if len(layers) != 4 or input_resolution % 32:
            raise ValueError(f"ModifiedResNet: expected 4 stage depths and a resolution divisible by 32, "
                             f"got layers {tuple(layers)}, input_resolution {input_resolution}")
        rng = init.as_rng(rng)
        self.output_dim, self.input_resolution = output_dim, input_resolution
        # the 3-layer stem
        self.conv1 = Conv2d(3, width // 2, 3, stride=2, padding=1, dtype=dtype, rng=rng)
        self.bn1 = BatchNorm2d(width // 2, dtype=dtype)
        self.conv2 = Conv2d(width // 2, width // 2, 3, padding=1, dtype=dtype, rng=rng)
        self.bn2 = BatchNorm2d(width // 2, dtype=dtype)
        self.conv3 = Conv2d(width // 2, width, 3, padding=1, dtype=dtype, rng=rng)
        self.bn3 = BatchNorm2d(width, dtype=dtype)
        # residual layers: stage k has planes w * 2^k and outputs 4 w * 2^k channels
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0], 1, dtype, rng)
        self.layer2 = self._make_layer(width * 2, layers[1], 2, dtype, rng)
        self.layer3 = self._make_layer(width * 4, layers[2], 2, dtype, rng)
        self.layer4 = self._make_layer(width * 8, layers[3], 2, dtype, rng)
        embed_dim = width * 32  # the ResNet feature dimension
        self.attnpool = AttentionPool2d(input_resolution // 32, embed_dim, heads, output_dim, dtype=dtype, rng=rng)

    def _make_layer(self, planes, blocks, stride, dtype, rng):
        layers = ModuleList([Bottleneck(self._inplanes, planes, stride, dtype, rng)])
        self._inplanes = planes * Bottleneck.expansion
        for _ in range(1, blocks):
            layers.append(Bottleneck(self._inplanes, planes, 1, dtype, rng))
        return layers

    def stem(self, x):
        x = conv_bn(self.conv1, self.bn1, x, relu=True)   # relu(bn1(conv1(x))): (N, 3, R, R) -> (N, w/2, R/2, R/2)
        x = conv_bn(self.conv2, self.bn2, x, relu=True)   # (N, w/2, R/2, R/2)
        x = conv_bn(self.conv3, self.bn3, x, relu=True)   # (N, w, R/2, R/2)
        return ops.avg_pool2d(x, 2)                       # (N, w, R/4, R/4)

    def forward(self, x):
        x = self.stem(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                x = block(x)                       # ends at (N, 32 w, R/32, R/32)
        return self.attnpool(x)                    # (N, E)
