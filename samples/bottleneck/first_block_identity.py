# Typical mistake: the first block 'keeps' 64 channels, so it is given an
# identity shortcut, although its output has 4 * 64 = 256 channels.
# Expected: small_resnet_assembly and small_resnet_counts fail; the Bottleneck
# cells, small_resnet_visible, small_resnet_behaviour and train_adam pass.

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
            self.projection = nn.Conv2D(4 * num_channels, kernel_size=1, strides=strides)
        else:
            self.projection = None

    def forward(self, X):
        Y = npx.relu(self.bn1(self.conv1(X)))
        Y = npx.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        shortcut = X if self.projection is None else self.projection(X)
        return npx.relu(Y + shortcut)


# %% small_resnet
def small_resnet(num_classes=10):
    """A small bottleneck ResNet for 32x32 colour images."""
    net = nn.Sequential()
    net.add(nn.Conv2D(64, kernel_size=3, strides=1, padding=1),
            nn.BatchNorm(), nn.Activation('relu'),
            Bottleneck(64, use_projection=False),
            Bottleneck(64, use_projection=False),
            Bottleneck(128, strides=2),
            Bottleneck(128, use_projection=False),
            nn.GlobalAvgPool2D(),
            nn.Dense(num_classes))
    return net


# %% train_adam
def train_adam(net, train_iter, test_iter, num_epochs, lr, device):
    """Train `net` with Adam; return the per-epoch losses and accuracies."""
    net.initialize(init.Xavier(), ctx=device, force_reinit=True)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr})
    history = {'train_loss': [], 'train_acc': [], 'val_loss': [], 'val_acc': []}
    for epoch in range(num_epochs):
        total_loss, correct, count = 0.0, 0.0, 0
        for X, y in train_iter:
            X, y = X.as_in_ctx(device), y.as_in_ctx(device)
            with autograd.record():
                y_hat = net(X)
                l = loss(y_hat, y)
            l.backward()
            trainer.step(X.shape[0])
            total_loss += float(l.sum())
            correct += float((y_hat.argmax(axis=1).astype(y.dtype) == y).sum())
            count += X.shape[0]
        val_loss, val_acc = evaluate(net, test_iter, device)
        history['train_loss'].append(total_loss / count)
        history['train_acc'].append(correct / count)
        history['val_loss'].append(val_loss)
        history['val_acc'].append(val_acc)
        print(f"epoch {epoch + 1}: loss {total_loss / count:.3f}, accuracy {correct / count:.3f}, "
              f"val loss {val_loss:.3f}, val accuracy {val_acc:.3f}")
    return history


# %% preact_bottleneck
class PreActBottleneck(nn.Block):
    """Pre-activation bottleneck: (BN -> ReLU -> conv) x 3, plus a shortcut; no final ReLU."""

    def __init__(self, num_channels, strides=1, use_projection=True, **kwargs):
        super().__init__(**kwargs)
        self.bn1 = nn.BatchNorm()
        self.conv1 = nn.Conv2D(num_channels, kernel_size=1, strides=strides)
        self.bn2 = nn.BatchNorm()
        self.conv2 = nn.Conv2D(num_channels, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm()
        self.conv3 = nn.Conv2D(4 * num_channels, kernel_size=1)
        if use_projection:
            self.projection = nn.Conv2D(4 * num_channels, kernel_size=1, strides=strides)
        else:
            self.projection = None

    def forward(self, X):
        pre = npx.relu(self.bn1(X))
        shortcut = X if self.projection is None else self.projection(pre)
        Y = self.conv1(pre)
        Y = self.conv2(npx.relu(self.bn2(Y)))
        Y = self.conv3(npx.relu(self.bn3(Y)))
        return Y + shortcut
