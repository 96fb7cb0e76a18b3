# based on: correct_reference
# Typical mistake: convolutions without biases (use_bias=False, a habit from
# networks where BatchNorm follows every convolution). The block still computes
# the right kind of function, but the exercise asks for Gluon's defaults and the
# notebook's parameter counts depend on them.
# Expected: residual_structure fails (its message says so), and so does the
# whole-network check resnet18_complete, which counts 11,186,186 parameters.

# %% residual
class Residual(nn.Block):
    """A ResNet residual block: two 3x3 convolutions plus a shortcut."""

    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = nn.Conv2D(num_channels, kernel_size=3, padding=1, strides=strides, use_bias=False)
        self.conv2 = nn.Conv2D(num_channels, kernel_size=3, padding=1, use_bias=False)
        self.conv3 = (nn.Conv2D(num_channels, kernel_size=1, strides=strides, use_bias=False)
                      if use_1x1conv else None)
        self.bn1 = nn.BatchNorm()
        self.bn2 = nn.BatchNorm()

    def forward(self, X):
        Y = npx.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        return npx.relu(Y + X)
