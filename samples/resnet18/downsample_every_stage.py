# %% residual
class Residual(nn.Block):
    """A ResNet residual block: two 3x3 convolutions plus a shortcut."""

    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = nn.Conv2D(num_channels, kernel_size=3, padding=1, strides=strides)
        self.conv2 = nn.Conv2D(num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2D(num_channels, kernel_size=1, strides=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm()
        self.bn2 = nn.BatchNorm()

    def forward(self, X):
        Y = npx.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        return npx.relu(Y + X)

# %% stem
def make_stem():
    stem = nn.Sequential()
    stem.add(nn.Conv2D(64, kernel_size=7, strides=2, padding=3), nn.BatchNorm(),
             nn.Activation('relu'), nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    return stem

# %% resnet_block
def resnet_block(num_channels, num_residuals, first_block=False):
    blk = nn.Sequential()
    for i in range(num_residuals):
        if i == 0:
            blk.add(Residual(num_channels, use_1x1conv=True, strides=2))  # every stage starts by halving
        else:
            blk.add(Residual(num_channels))
    return blk

# %% resnet18
def resnet18(num_classes=10):
    net = nn.Sequential()
    net.add(make_stem(), resnet_block(64, 2, first_block=True), resnet_block(128, 2),
            resnet_block(256, 2), resnet_block(512, 2), nn.GlobalAvgPool2D(), nn.Dense(num_classes))
    return net

# %% print_layer_shapes
def print_layer_shapes(net, X):
    for layer in net:
        X = layer(X)
        print(layer.__class__.__name__, 'output shape:\t', X.shape)

# %% parameter_counts
def parameter_counts(net):
    total = trainable = 0
    for param in net.collect_params().values():
        size = param.data().size
        total += size
        if param.grad_req != 'null':
            trainable += size
    return total, trainable, total - trainable
