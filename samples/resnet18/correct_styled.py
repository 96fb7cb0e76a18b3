# %% residual
class Residual(nn.HybridBlock):
    """Main path in one HybridSequential, shortcut optional."""

    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.main = nn.HybridSequential()
        self.main.add(nn.Conv2D(num_channels, 3, strides, 1), nn.BatchNorm(), nn.Activation('relu'),
                      nn.Conv2D(num_channels, 3, 1, 1), nn.BatchNorm())
        self.project = nn.Conv2D(num_channels, 1, strides) if use_1x1conv else None
        self.out_act = nn.Activation('relu')

    def hybrid_forward(self, F, x):
        shortcut = x if self.project is None else self.project(x)
        return self.out_act(self.main(x) + shortcut)

# %% stem
STEM_LAYERS = [
    lambda: nn.Conv2D(channels=64, kernel_size=(7, 7), strides=(2, 2), padding=(3, 3)),
    nn.BatchNorm,
    lambda: nn.Activation(activation='relu'),
    lambda: nn.MaxPool2D(pool_size=(3, 3), strides=(2, 2), padding=(1, 1)),
]

def make_stem():
    stem = nn.HybridSequential()
    for make_layer in STEM_LAYERS:
        stem.add(make_layer())
    return stem

# %% resnet_block
def resnet_block(num_channels, num_residuals, first_block=False):
    units = [Residual(num_channels, use_1x1conv=not first_block, strides=1 if first_block else 2)]
    units += [Residual(num_channels) for _ in range(num_residuals - 1)]
    stage = nn.HybridSequential()
    stage.add(*units)
    return stage

# %% resnet18
def resnet18(num_classes=10):
    net = nn.HybridSequential()
    net.add(*make_stem())
    for index, channels in enumerate([64, 128, 256, 512]):
        net.add(resnet_block(channels, 2, first_block=index == 0))
    net.add(nn.GlobalAvgPool2D(), nn.Dense(num_classes))
    return net

# %% print_layer_shapes
def print_layer_shapes(net, X):
    shapes = []
    for layer in net:
        X = layer(X)
        shapes.append(f"{type(layer).__name__:>20}: {tuple(X.shape)}")
    print("\n".join(shapes))

# %% parameter_counts
def parameter_counts(net):
    import math
    params = net.collect_params()
    sizes = {name: math.prod(p.shape) for name, p in params.items()}
    frozen = sum(size for name, size in sizes.items() if params[name].grad_req == 'null')
    return sum(sizes.values()), sum(sizes.values()) - frozen, frozen
