# Sample submission: correct, written with every other spelling Gluon accepts:
# tuples for kernel sizes, strides and padding (also passed on to Bottleneck),
# keyword-only calls, a HybridBlock with np.maximum as the ReLU and its layers
# as plain attributes, blocks reached through an alias, a Trainer built with
# keywords, and the epoch's figures kept as running sums over examples.

# %% bottleneck
class Bottleneck(nn.HybridBlock):
    """Bottleneck unit; strides may be an int or a pair."""

    def __init__(self, num_channels, strides=1, use_projection=True, **kwargs):
        super().__init__(**kwargs)
        pair = tuple(strides) if isinstance(strides, (tuple, list)) else (strides, strides)
        self.reduce = nn.Conv2D(channels=num_channels, kernel_size=(1, 1), strides=pair, padding=(0, 0))
        self.reduce_norm = nn.BatchNorm()
        self.middle = nn.Conv2D(channels=num_channels, kernel_size=(3, 3), strides=(1, 1), padding=(1, 1))
        self.middle_norm = nn.BatchNorm()
        self.expand = nn.Conv2D(channels=4 * num_channels, kernel_size=(1, 1))
        self.expand_norm = nn.BatchNorm()
        self.use_projection = use_projection
        if use_projection:
            self.project = nn.Conv2D(channels=4 * num_channels, kernel_size=(1, 1), strides=pair)

    def hybrid_forward(self, F, X):
        Y = F.np.maximum(self.reduce_norm(self.reduce(X)), 0)
        Y = F.np.maximum(self.middle_norm(self.middle(Y)), 0)
        Y = self.expand_norm(self.expand(Y))
        shortcut = self.project(X) if self.use_projection else X
        return F.np.maximum(Y + shortcut, 0)


# %% small_resnet
Unit = Bottleneck  # an alias: the checks must still see the calls


def small_resnet(num_classes=10):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(channels=64, kernel_size=(3, 3), strides=(1, 1), padding=(1, 1)))
    net.add(nn.BatchNorm())
    net.add(nn.Activation(activation='relu'))
    net.add(Unit(num_channels=64, strides=(1, 1), use_projection=True))
    net.add(Unit(num_channels=64, strides=(1, 1), use_projection=False))
    net.add(Unit(num_channels=128, strides=(2, 2), use_projection=True))
    net.add(Unit(num_channels=128, strides=(1, 1), use_projection=False))
    net.add(nn.GlobalAvgPool2D())
    net.add(nn.Dense(units=num_classes))
    return net


# %% train_adam
def train_adam(net, train_iter, test_iter, num_epochs, lr, device):
    net.initialize(init=init.Xavier(), ctx=device, force_reinit=True)
    trainer = gluon.Trainer(params=net.collect_params(), optimizer='adam',
                            optimizer_params={'learning_rate': lr})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    history = dict(train_loss=[], train_acc=[], val_loss=[], val_acc=[])
    for epoch in range(num_epochs):
        sums = {'loss': 0.0, 'correct': 0.0, 'examples': 0}
        for X, y in train_iter:
            X = X.as_in_ctx(device)
            y = y.as_in_ctx(device)
            with autograd.record():
                scores = net(X)
                losses = loss_fn(scores, y)
            losses.backward()
            trainer.step(batch_size=y.shape[0])
            sums['loss'] += losses.sum().item()
            sums['correct'] += (scores.argmax(axis=1).astype('int64') == y.astype('int64')).sum().item()
            sums['examples'] += y.size
        history['train_loss'].append(sums['loss'] / sums['examples'])
        history['train_acc'].append(sums['correct'] / sums['examples'])
        val_loss, val_acc = evaluate(net=net, data_iter=test_iter, device=device)
        history['val_loss'].append(val_loss)
        history['val_acc'].append(val_acc)
        print(f"epoch {epoch + 1}: loss {history['train_loss'][-1]:.3f}, "
              f"accuracy {history['train_acc'][-1]:.3f}, val loss {val_loss:.3f}, val accuracy {val_acc:.3f}")
    return history


# %% preact_bottleneck
class PreActBottleneck(nn.HybridBlock):
    """Pre-activation bottleneck with tuples and keywords; the projection reads the pre-activated input."""

    def __init__(self, num_channels, strides=1, use_projection=True, **kwargs):
        super().__init__(**kwargs)
        pair = tuple(strides) if isinstance(strides, (tuple, list)) else (strides, strides)
        self.norm_in = nn.BatchNorm()
        self.reduce = nn.Conv2D(channels=num_channels, kernel_size=(1, 1), strides=pair)
        self.norm_mid = nn.BatchNorm()
        self.middle = nn.Conv2D(channels=num_channels, kernel_size=(3, 3), padding=(1, 1))
        self.norm_out = nn.BatchNorm()
        self.expand = nn.Conv2D(channels=4 * num_channels, kernel_size=(1, 1))
        self.project = (nn.Conv2D(channels=4 * num_channels, kernel_size=(1, 1), strides=pair)
                        if use_projection else None)

    def hybrid_forward(self, F, X):
        pre = F.np.maximum(self.norm_in(X), 0)
        Y = self.reduce(pre)
        Y = self.middle(F.np.maximum(self.norm_mid(Y), 0))
        Y = self.expand(F.np.maximum(self.norm_out(Y), 0))
        return Y + (X if self.project is None else self.project(pre))
