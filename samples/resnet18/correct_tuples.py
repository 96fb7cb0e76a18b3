# Sample submission: correct, written with every other spelling Gluon accepts:
# tuples for kernel sizes, strides and padding (also passed on to Residual),
# keyword-only calls, HybridBlock with np.maximum as the ReLU, the identity
# shortcut as an empty HybridSequential, and pieces reached through aliases.

# %% residual
class Residual(nn.HybridBlock):
    """Basic residual unit; strides may be an int or a pair."""

    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(**kwargs)
        pair = tuple(strides) if isinstance(strides, (tuple, list)) else (strides, strides)
        self.first = nn.Conv2D(channels=num_channels, kernel_size=(3, 3), strides=pair, padding=(1, 1))
        self.first_norm = nn.BatchNorm()
        self.second = nn.Conv2D(channels=num_channels, kernel_size=(3, 3), strides=(1, 1), padding=(1, 1))
        self.second_norm = nn.BatchNorm()
        self.shortcut = nn.HybridSequential()
        if use_1x1conv:
            self.shortcut.add(nn.Conv2D(channels=num_channels, kernel_size=(1, 1), strides=pair))

    def hybrid_forward(self, F, X):
        Y = F.np.maximum(self.first_norm(self.first(X)), 0)
        Y = self.second_norm(self.second(Y))
        return F.np.maximum(Y + self.shortcut(X), 0)

# %% stem
def make_stem():
    stem = nn.HybridSequential()
    stem.add(nn.Conv2D(channels=64, kernel_size=(7, 7), strides=(2, 2), padding=(3, 3)))
    stem.add(nn.BatchNorm())
    stem.add(nn.Activation(activation='relu'))
    stem.add(nn.MaxPool2D(pool_size=(3, 3), strides=(2, 2), padding=(1, 1)))
    return stem

# %% resnet_block
Unit = Residual  # an alias: the checks must still see the calls


def resnet_block(num_channels, num_residuals, first_block=False):
    stage = nn.HybridSequential()
    for index in range(num_residuals):
        if index == 0 and not first_block:
            stage.add(Unit(num_channels=num_channels, use_1x1conv=True, strides=(2, 2)))
        else:
            stage.add(Unit(num_channels=num_channels, use_1x1conv=False, strides=(1, 1)))
    return stage

# %% resnet18
def resnet18(num_classes=10, stage=resnet_block):
    net = nn.HybridSequential()
    net.add(make_stem())
    for channels, first in ((64, True), (128, False), (256, False), (512, False)):
        net.add(stage(num_channels=channels, num_residuals=2, first_block=first))
    net.add(nn.GlobalAvgPool2D(), nn.Dense(units=num_classes))
    return net

# %% print_layer_shapes
def print_layer_shapes(net, X):
    for layer in net:
        X = layer(X)
        print(type(layer).__name__, 'output shape:', X.shape)

# %% parameter_counts
def parameter_counts(net):
    total = trainable = 0
    for param in net.collect_params().values():
        size = int(np.prod(np.array(param.shape)))
        total += size
        trainable += size if param.grad_req != 'null' else 0
    return (total, trainable, total - trainable)
