# based on: correct_reference
# Typical mistake: the epoch's training loss and accuracy are the means of the
# batches' means. When the last batch is smaller than the others, that is not
# the mean per example and the fraction correct that step 5 asks for.
# Expected: only train_adam_steps fails.

# %% train_adam
def train_adam(net, train_iter, test_iter, num_epochs, lr, device):
    """Train `net` with Adam; return the per-epoch losses and accuracies."""
    net.initialize(init.Xavier(), ctx=device, force_reinit=True)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr})
    history = {'train_loss': [], 'train_acc': [], 'val_loss': [], 'val_acc': []}
    for epoch in range(num_epochs):
        total_loss, correct, batches = 0.0, 0.0, 0
        for X, y in train_iter:
            X, y = X.as_in_ctx(device), y.as_in_ctx(device)
            with autograd.record():
                y_hat = net(X)
                l = loss(y_hat, y)
            l.backward()
            trainer.step(X.shape[0])
            total_loss += float(l.mean())
            correct += float((y_hat.argmax(axis=1).astype(y.dtype) == y).mean())
            batches += 1
        val_loss, val_acc = evaluate(net, test_iter, device)
        history['train_loss'].append(total_loss / batches)
        history['train_acc'].append(correct / batches)
        history['val_loss'].append(val_loss)
        history['val_acc'].append(val_acc)
        print(f"epoch {epoch + 1}: loss {total_loss / batches:.3f}, accuracy {correct / batches:.3f}, "
              f"val loss {val_loss:.3f}, val accuracy {val_acc:.3f}")
    return history
