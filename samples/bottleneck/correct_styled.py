# Sample submission: correct, but written differently from the reference:
# HybridBlock and HybridSequential, other attribute names, nn.Activation,
# positional arguments, a hybridized network, a mean loss with step(1), and a
# pre-activation block whose projection reads the raw input.

# %% bottleneck
class Bottleneck(nn.HybridBlock):
    """Bottleneck residual unit (1x1 reduce, 3x3, 1x1 expand x4) with a shortcut."""

    def __init__(self, num_channels, strides=1, use_projection=True, **kwargs):
        super().__init__(**kwargs)
        wide = num_channels * 4
        self.residual = nn.HybridSequential()
        self.residual.add(nn.Conv2D(num_channels, 1, strides),
                          nn.BatchNorm(),
                          nn.Activation('relu'),
                          nn.Conv2D(num_channels, 3, 1, 1),
                          nn.BatchNorm(),
                          nn.Activation('relu'),
                          nn.Conv2D(wide, 1),
                          nn.BatchNorm())
        self.skip = nn.HybridSequential()  # empty: passes its input through
        if use_projection:
            self.skip.add(nn.Conv2D(wide, 1, strides))
        self.act = nn.Activation('relu')

    def hybrid_forward(self, F, x):
        return self.act(self.residual(x) + self.skip(x))


# %% small_resnet
def small_resnet(num_classes=10):
    """Small bottleneck ResNet for CIFAR-10."""
    stem = nn.HybridSequential()
    stem.add(nn.Conv2D(64, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'))
    body = nn.HybridSequential()
    for channels, stride, projection in [(64, 1, True), (64, 1, False), (128, 2, True), (128, 1, False)]:
        body.add(Bottleneck(channels, stride, projection))
    net = nn.HybridSequential()
    net.add(stem, body, nn.GlobalAvgPool2D(), nn.Dense(num_classes))
    net.hybridize()
    return net


# %% train_adam
def train_adam(net, train_iter, test_iter, num_epochs, lr, device):
    """Adam training loop recording the per-epoch metrics."""
    net.initialize(init=init.Xavier(), ctx=device, force_reinit=True)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr})
    cross_entropy = gluon.loss.SoftmaxCrossEntropyLoss()
    history = {name: [] for name in ('train_loss', 'train_acc', 'val_loss', 'val_acc')}
    for epoch in range(num_epochs):
        metric = d2l.Accumulator(3)  # loss sum, correct predictions, examples
        for features, labels in train_iter:
            features, labels = features.as_in_ctx(device), labels.as_in_ctx(device)
            with autograd.record():
                scores = net(features)
                batch_loss = cross_entropy(scores, labels).mean()
            batch_loss.backward()
            trainer.step(1)
            n = labels.shape[0]
            metric.add(float(batch_loss) * n, d2l.accuracy(scores, labels), n)
        history['train_loss'].append(metric[0] / metric[2])
        history['train_acc'].append(metric[1] / metric[2])
        val_loss, val_acc = evaluate(net, test_iter, device)
        history['val_loss'].append(val_loss)
        history['val_acc'].append(val_acc)
        print(f"epoch {epoch + 1}/{num_epochs}: train {history['train_loss'][-1]:.4f} / "
              f"{history['train_acc'][-1]:.3f}, validation {val_loss:.4f} / {val_acc:.3f}")
    return history


# %% preact_bottleneck
class PreActBottleneck(nn.HybridBlock):
    """Pre-activation bottleneck; the projection reads the raw input."""

    def __init__(self, num_channels, strides=1, use_projection=True, **kwargs):
        super().__init__(**kwargs)
        self.pre = nn.HybridSequential()
        self.pre.add(nn.BatchNorm(), nn.Activation('relu'))
        self.body = nn.HybridSequential()
        self.body.add(nn.Conv2D(num_channels, 1, strides),
                      nn.BatchNorm(), nn.Activation('relu'), nn.Conv2D(num_channels, 3, padding=1),
                      nn.BatchNorm(), nn.Activation('relu'), nn.Conv2D(4 * num_channels, 1))
        self.down = nn.Conv2D(4 * num_channels, 1, strides) if use_projection else None

    def hybrid_forward(self, F, x):
        out = self.body(self.pre(x))
        return out + (self.down(x) if self.down is not None else x)
