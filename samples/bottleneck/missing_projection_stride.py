# based on: correct_reference
# Typical mistake: the projection shortcut forgets the stride, so with
# strides=2 the two branches no longer have the same height and width.
# Expected: bottleneck_visible, bottleneck_shapes and bottleneck_structure fail;
# bottleneck_behaviour (judged at stride 1) and every later part pass.

# %% bottleneck
class Bottleneck(nn.Block):
    """ResNet bottleneck block: 1x1 (reduce) -> 3x3 -> 1x1 (expand 4x), plus a shortcut.

    num_channels: width inside the block; the output has 4 * num_channels channels.
    strides: stride of the first 1x1 convolution and of the projection.
    use_projection: shortcut through a strided 1x1 convolution (True) or the identity (False).
    """

    def __init__(self, num_channels, strides=1, use_projection=True, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = nn.Conv2D(num_channels, kernel_size=1, strides=strides)
        self.bn1 = nn.BatchNorm()
        self.conv2 = nn.Conv2D(num_channels, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm()
        self.conv3 = nn.Conv2D(4 * num_channels, kernel_size=1)
        self.bn3 = nn.BatchNorm()
        if use_projection:
            self.projection = nn.Conv2D(4 * num_channels, kernel_size=1)
        else:
            self.projection = None

    def forward(self, X):
        Y = npx.relu(self.bn1(self.conv1(X)))
        Y = npx.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        shortcut = X if self.projection is None else self.projection(X)
        return npx.relu(Y + shortcut)
