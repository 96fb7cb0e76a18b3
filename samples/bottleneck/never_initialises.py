# based on: correct_reference
# Typical mistake: the loop never initialises the network (step 1), trusting
# that whoever built it did. On the notebook's path, small_resnet() comes
# uninitialised and the first batch raises an error.
# Expected: only train_adam_steps fails (the visible check hands the loop a
# network that was initialised beforehand, so it passes).

# %% train_adam
def train_adam(net, train_iter, test_iter, num_epochs, lr, device):
    """Train `net` with Adam; return the per-epoch losses and accuracies."""
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
