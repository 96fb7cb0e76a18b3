# based on: correct_reference

# %% stem
def make_stem():
    stem = nn.Sequential()
    stem.add(nn.Conv2D(64, kernel_size=7, strides=2, padding=3), nn.Activation('relu'),
             nn.BatchNorm(), nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    return stem

# %% print_layer_shapes
def print_layer_shapes(net, X):
    for layer in net:
        print(layer.__class__.__name__, 'output shape:\t', X.shape)
        X = layer(X)

# %% parameter_counts
def parameter_counts(net):
    total = trainable = 0
    for param in net.collect_params().values():
        size = param.data().size
        total += size
        trainable += size
    return total, trainable, total - trainable
